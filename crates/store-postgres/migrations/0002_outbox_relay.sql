-- With an external queue (NATS JetStream) a relay hands outbox rows to the broker;
-- relayed_at records that it did. Unrelayed rows are found by a partial index.
ALTER TABLE outbox ADD COLUMN relayed_at BIGINT;
CREATE INDEX outbox_unrelayed ON outbox (created_at) WHERE relayed_at IS NULL;
