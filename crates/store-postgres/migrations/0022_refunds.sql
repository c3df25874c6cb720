-- Refunds (issue 8): full or partial, decided here atomically (the order row is
-- locked), moved at the gateway by the payment worker through the outbox
-- (`order.refunded`).

-- How much of the order's amount was refunded so far; all of it makes the order
-- 'refunded'.
ALTER TABLE orders ADD COLUMN refunded_amount bigint NOT NULL DEFAULT 0
    CHECK (refunded_amount >= 0 AND refunded_amount <= amount);

-- A refunded order's tickets are void; its seats can be sold again, and the new
-- buyer's ticket for the same seat must not collide with the void one.
ALTER TABLE tickets ADD COLUMN voided_at timestamptz;
DROP INDEX tickets_seat;
CREATE UNIQUE INDEX tickets_seat ON tickets (event_id, seat_id)
    WHERE seat_id IS NOT NULL AND voided_at IS NULL;

-- One row per refund decided; settled_at once the gateway confirmed it. Its id is
-- its idempotency key at the gateway, so a retried refund is one refund.
CREATE TABLE refunds (
    id         text PRIMARY KEY,
    order_id   text NOT NULL REFERENCES orders (id),
    charge_id  text NOT NULL,
    amount     bigint NOT NULL CHECK (amount > 0),
    -- Whether it refunded what was left of the order (the order is refunded now).
    whole      boolean NOT NULL DEFAULT false,
    currency   text NOT NULL,
    created_at timestamptz NOT NULL,
    settled_at timestamptz
);
CREATE INDEX refunds_order ON refunds (order_id);
