-- Refunds under an Idempotency-Key (issue 8): a stored answer may also be
-- 'refunded' (the order the refund was of). SQLite cannot change a CHECK in place:
-- the table is rebuilt, as in 0011 (nothing references it).
CREATE TABLE idempotency_keys_0041 (
    user_id     TEXT NOT NULL,
    route       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    answer      TEXT NOT NULL CHECK (answer IN ('accepted', 'refunded')),
    order_id    TEXT CHECK (answer NOT IN ('accepted', 'refunded') OR order_id IS NOT NULL),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, route, key)
) WITHOUT ROWID;

INSERT INTO idempotency_keys_0041 (user_id, route, key, fingerprint, answer, order_id, created_at)
SELECT user_id, route, key, fingerprint, answer, order_id, created_at FROM idempotency_keys;

DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_0041 RENAME TO idempotency_keys;
