-- The stored answer of an idempotent checkout is a business outcome, not an HTTP
-- response: `answer` names it ('accepted') and `order_id` is the order it created.
-- The HTTP layer says how it is sent. Rows written before kept status 202 and the
-- body {"order_id": …, "status": "pending_payment"}: they become 'accepted' with
-- the body's order id, and replay as before. Any other status was never written;
-- one would make the copy fail (answer NOT NULL) rather than replay wrongly.
-- SQLite cannot add a NOT NULL column with a check to existing rows in place, so
-- the table is rebuilt.
CREATE TABLE idempotency_keys_0011 (
    user_id     TEXT NOT NULL,
    route       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    answer      TEXT NOT NULL CHECK (answer IN ('accepted')),
    order_id    TEXT CHECK (answer <> 'accepted' OR order_id IS NOT NULL),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, route, key)
) WITHOUT ROWID;

INSERT INTO idempotency_keys_0011 (user_id, route, key, fingerprint, answer, order_id, created_at)
SELECT user_id, route, key, fingerprint,
       CASE status WHEN 202 THEN 'accepted' END,
       json_extract(body, '$.order_id'),
       created_at
FROM idempotency_keys;

DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_0011 RENAME TO idempotency_keys;
