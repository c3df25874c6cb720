-- The tamper-evident audit log (issue 13): every record in one hash chain.
-- `seq` runs 1, 2, 3, … with no gap (a gap is a removed record); `hash` is
-- SHA-256(prev_hash || the record's canonical bytes) in hex. Several nodes append:
-- each append transaction locks the one `audit_head` row (FOR UPDATE), reads the
-- head, inserts after it and moves it, so appends are serialised and the chain
-- never forks.
CREATE TABLE audit_records (
    seq        bigint PRIMARY KEY,
    -- The outbox message that carried it: one record per message.
    id         text NOT NULL UNIQUE,
    at         timestamptz NOT NULL,       -- to the millisecond, what the hash covers
    actor      text NOT NULL,              -- a user id or 'system'
    role       text NOT NULL,
    request_id text,
    ip         text,
    action     text NOT NULL,
    subject    text NOT NULL,
    event_id   text,
    before     text,                       -- compact JSON, hashed as written
    after      text,
    prev_hash  text NOT NULL,
    hash       text NOT NULL
);
CREATE INDEX audit_records_by_event ON audit_records (event_id, seq);

-- The chain head (the lock appends take) and the last record's seq and hash.
CREATE TABLE audit_head (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq  bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO audit_head (one, seq, hash)
VALUES (true, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Signed checkpoints (Ed25519 over seq and hash, by a key derived from the server
-- secret, which the database does not hold).
CREATE TABLE audit_checkpoints (
    seq        bigint PRIMARY KEY,
    hash       text NOT NULL,
    at         timestamptz NOT NULL,
    public_key text NOT NULL,
    signature  text NOT NULL
);

-- The old, unchained log is superseded: nothing reads it.
DROP TABLE audit_log;
