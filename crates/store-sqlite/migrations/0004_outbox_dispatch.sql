-- Embedded delivery without a queue table: committed outbox messages are handed to
-- the in-process workers directly, and each consumer's outcome sets its bit in
-- `done` in the same transaction. `pending` is the set of consumers that must handle
-- the message (payment 1, email 2, audit 4, analytics 8); a restart replays every
-- message whose `done` lacks a bit of `pending`.
ALTER TABLE outbox ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN done INTEGER NOT NULL DEFAULT 0;

-- Jobs given up after too many attempts, for an operator to look at.
CREATE TABLE dead_jobs (
    message_id TEXT NOT NULL REFERENCES outbox (id),
    consumer   TEXT NOT NULL,
    error      TEXT NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (message_id, consumer)
) WITHOUT ROWID;

-- Carry the queue table's state over, then drop it.
UPDATE outbox SET
    pending = (SELECT COALESCE(SUM(CASE consumer WHEN 'payment' THEN 1 WHEN 'email' THEN 2
                                                 WHEN 'audit' THEN 4 WHEN 'analytics' THEN 8 END), 0)
               FROM jobs WHERE jobs.message_id = outbox.id),
    done = (SELECT COALESCE(SUM(CASE consumer WHEN 'payment' THEN 1 WHEN 'email' THEN 2
                                              WHEN 'audit' THEN 4 WHEN 'analytics' THEN 8 END), 0)
            FROM jobs WHERE jobs.message_id = outbox.id AND state IN ('done', 'dead'));
INSERT INTO dead_jobs (message_id, consumer, error, at)
    SELECT message_id, consumer, COALESCE(last_error, 'dead'), COALESCE(done_at, enqueued_at)
    FROM jobs WHERE state = 'dead';
DROP TABLE jobs;

-- What a restart replays.
CREATE INDEX outbox_unfinished ON outbox (created_at) WHERE done != pending;
