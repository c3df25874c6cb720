-- Refunds (issue 8): full or partial, decided here atomically, moved at the gateway
-- by the payment worker through the outbox (`order.refunded`).

-- How much of the order's amount was refunded so far; all of it makes the order
-- 'refunded'.
ALTER TABLE orders ADD COLUMN refunded_amount INTEGER NOT NULL DEFAULT 0
    CHECK (refunded_amount >= 0);

-- A refunded order's tickets are void; its seats can be sold again, and the new
-- buyer's ticket for the same seat must not collide with the void one.
ALTER TABLE tickets ADD COLUMN voided_at INTEGER;
DROP INDEX tickets_seat;
CREATE UNIQUE INDEX tickets_seat ON tickets (event_id, seat_id)
    WHERE seat_id IS NOT NULL AND voided_at IS NULL;

-- One row per refund decided; settled_at once the gateway confirmed it. Its id is
-- its idempotency key at the gateway, so a retried refund is one refund.
CREATE TABLE refunds (
    id         TEXT PRIMARY KEY,
    order_id   TEXT NOT NULL REFERENCES orders (id),
    charge_id  TEXT NOT NULL,
    amount     INTEGER NOT NULL CHECK (amount > 0),
    -- Whether it refunded what was left of the order (the order is refunded now).
    whole      INTEGER NOT NULL DEFAULT 0,
    currency   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    settled_at INTEGER
);
CREATE INDEX refunds_order ON refunds (order_id);
