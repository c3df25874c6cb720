-- PostgreSQL's own types for what 0001 stored the SQLite way.
--
-- * Instants become timestamptz. The old BIGINT Unix milliseconds convert exactly:
--   epoch + n milliseconds is integer arithmetic (to_timestamp(n / 1000.0) would go
--   through a double). The store binds time::OffsetDateTime, truncated to the
--   millisecond as before, so the values it reads back are the ones it wrote.
-- * Counts, positions and coordinates become integer (the domain's u32/i32); money
--   (amount, revenue) and running totals stay BIGINT.
-- * Lists of section names become text[]; the outbox payload becomes jsonb (checked
--   on insert; workers parse it as before).
-- Every ALTER rewrites its table once, in this migration's transaction: an existing
-- database migrates forward in place, nothing lost.

CREATE FUNCTION pg_temp.ms_to_timestamptz(ms BIGINT) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT TIMESTAMPTZ 'epoch' + ms * INTERVAL '1 millisecond' $$;

-- ALTER … USING may not hold a subquery; a function may.
CREATE FUNCTION pg_temp.json_text_array(j TEXT) RETURNS text[]
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT ARRAY(SELECT jsonb_array_elements_text(j::jsonb)) $$;

ALTER TABLE users
    ALTER created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at);

ALTER TABLE venues
    ALTER sections   TYPE text[]      USING pg_temp.json_text_array(sections),
    ALTER seat_count TYPE integer,
    ALTER created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at);

ALTER TABLE seats
    ALTER position TYPE integer,
    ALTER x        TYPE integer,
    ALTER y        TYPE integer;

ALTER TABLE events
    ALTER starts_at             TYPE timestamptz USING pg_temp.ms_to_timestamptz(starts_at),
    ALTER sale_starts_at        TYPE timestamptz USING pg_temp.ms_to_timestamptz(sale_starts_at),
    ALTER sale_ends_at          TYPE timestamptz USING pg_temp.ms_to_timestamptz(sale_ends_at),
    ALTER hold_ttl_seconds      TYPE integer,
    ALTER max_tickets_per_order TYPE integer,
    ALTER seat_count            TYPE integer,
    ALTER created_at            TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ALTER updated_at            TYPE timestamptz USING pg_temp.ms_to_timestamptz(updated_at);

ALTER TABLE price_tiers
    ALTER position TYPE integer,
    ALTER sections TYPE text[] USING pg_temp.json_text_array(sections);

ALTER TABLE ga_tiers
    ALTER position TYPE integer,
    ALTER capacity TYPE integer,
    ALTER sold     TYPE integer;

ALTER TABLE event_seats
    ALTER seat_index TYPE integer;

ALTER TABLE holds
    ALTER quantity       TYPE integer,
    ALTER expires_at     TYPE timestamptz USING pg_temp.ms_to_timestamptz(expires_at),
    ALTER created_at     TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ALTER updated_at     TYPE timestamptz USING pg_temp.ms_to_timestamptz(updated_at),
    ALTER ttl_expires_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(ttl_expires_at),
    ALTER sold_at        TYPE timestamptz USING pg_temp.ms_to_timestamptz(sold_at);

ALTER TABLE hold_seats
    ALTER position TYPE integer;

ALTER TABLE sold_seats
    ALTER sold_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(sold_at);

ALTER TABLE orders
    ALTER created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ALTER updated_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(updated_at);

ALTER TABLE order_items
    ALTER position TYPE integer;

ALTER TABLE tickets
    ALTER position  TYPE integer,
    ALTER issued_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(issued_at);

ALTER TABLE payments
    ALTER created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at);

ALTER TABLE idempotency_keys
    ALTER status     TYPE integer,
    ALTER created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at);

ALTER TABLE outbox
    ALTER payload    TYPE jsonb       USING payload::jsonb,
    ALTER created_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(created_at),
    ALTER relayed_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(relayed_at);

ALTER TABLE jobs
    ALTER attempts     TYPE integer,
    ALTER available_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(available_at),
    ALTER lease_until  TYPE timestamptz USING pg_temp.ms_to_timestamptz(lease_until),
    ALTER enqueued_at  TYPE timestamptz USING pg_temp.ms_to_timestamptz(enqueued_at),
    ALTER done_at      TYPE timestamptz USING pg_temp.ms_to_timestamptz(done_at);

ALTER TABLE audit_log
    ALTER at TYPE timestamptz USING pg_temp.ms_to_timestamptz(at);

ALTER TABLE emails_sent
    ALTER sent_at TYPE timestamptz USING pg_temp.ms_to_timestamptz(sent_at);

DROP FUNCTION pg_temp.ms_to_timestamptz(BIGINT);
DROP FUNCTION pg_temp.json_text_array(TEXT);
