-- Orders may wait in 'payment_unknown': the gateway's answer was lost until the
-- payment deadline, a charge may exist, and the reconciler settles it.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending_payment', 'payment_unknown', 'paid', 'failed', 'refunded', 'cancelled'));

-- A hold backs at most one live order: pending, unknown (a charge may exist) or paid.
DROP INDEX orders_live_hold;
CREATE UNIQUE INDEX orders_live_hold ON orders (hold_id)
    WHERE status IN ('pending_payment', 'payment_unknown', 'paid');
-- What the reconciler reads.
DROP INDEX orders_pending;
CREATE INDEX orders_pending ON orders (created_at)
    WHERE status IN ('pending_payment', 'payment_unknown');
