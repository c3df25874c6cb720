-- Orders may wait in 'payment_unknown': the gateway's answer was lost until the
-- payment deadline, a charge may exist, and the reconciler settles it. SQLite cannot
-- change a CHECK in place, so the table is rebuilt. Foreign keys (order_items,
-- tickets, payments) are deferred to the commit; re-inserting every order into the
-- new table satisfies them again. A column added to orders by an earlier migration
-- must be added to the new table here too (the copy below fails until it is).
PRAGMA defer_foreign_keys = ON;

CREATE TABLE orders_before_0010 AS SELECT * FROM orders;
DROP TABLE orders;
CREATE TABLE orders (
    id            TEXT PRIMARY KEY,
    customer_id   TEXT NOT NULL REFERENCES users (id),
    event_id      TEXT NOT NULL REFERENCES events (id),
    hold_id       TEXT NOT NULL REFERENCES holds (id),
    email         TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending_payment', 'payment_unknown', 'paid', 'failed', 'refunded', 'cancelled')),
    failure_code  TEXT,
    amount        INTEGER NOT NULL CHECK (amount >= 0),
    currency      TEXT NOT NULL,
    payment_token TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
-- Every column, in order: a column another migration added to orders and this
-- table lacks makes the copy fail (a column count mismatch) instead of vanishing.
INSERT INTO orders SELECT * FROM orders_before_0010;
DROP TABLE orders_before_0010;

-- A hold backs at most one live order: pending, unknown (a charge may exist) or paid.
CREATE UNIQUE INDEX orders_live_hold ON orders (hold_id)
    WHERE status IN ('pending_payment', 'payment_unknown', 'paid');
CREATE INDEX orders_customer ON orders (customer_id, created_at);
-- What the reconciler reads.
CREATE INDEX orders_pending ON orders (created_at)
    WHERE status IN ('pending_payment', 'payment_unknown');
