-- The tamper-evident audit log (issue 13): every record in one hash chain.
-- `seq` runs 1, 2, 3, … with no gap (a gap is a removed record); `hash` is
-- SHA-256(prev_hash || the record's canonical bytes) in hex, computed by the
-- store's one writer, which reads the head and moves it in the same transaction
-- (SQLite has one writer: appends are serialised by construction).
CREATE TABLE audit_records (
    seq        INTEGER PRIMARY KEY,
    -- The outbox message that carried it: one record per message, however often
    -- the audit worker is given it.
    id         TEXT NOT NULL UNIQUE,
    at         INTEGER NOT NULL,           -- Unix ms, what the hash covers
    actor      TEXT NOT NULL,              -- a user id or 'system'
    role       TEXT NOT NULL,
    request_id TEXT,
    ip         TEXT,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    event_id   TEXT,
    before     TEXT,                       -- compact JSON
    after      TEXT,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_records_by_event ON audit_records (event_id, seq);

-- The chain head: the last record's seq and hash. The verifier compares the last
-- record with it (a record appended behind the writer's back, or the last one
-- removed, shows there).
CREATE TABLE audit_head (
    one  INTEGER PRIMARY KEY CHECK (one = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (one, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Signed checkpoints: an Ed25519 signature, by a key derived from the server
-- secret, over (seq, hash). Everything up to a checkpoint is vouched for by a key
-- the database does not hold.
CREATE TABLE audit_checkpoints (
    seq        INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL,
    at         INTEGER NOT NULL,
    public_key TEXT NOT NULL,
    signature  TEXT NOT NULL
);

-- The old, unchained log (action, subject, detail) is superseded: nothing reads it.
DROP TABLE audit_log;
