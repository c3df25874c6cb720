-- Refunds under an Idempotency-Key (issue 8): a stored answer may also be
-- 'refunded' (the order the refund was of).
ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_answer,
    DROP CONSTRAINT idempotency_keys_order,
    ADD CONSTRAINT idempotency_keys_answer CHECK (answer IN ('accepted', 'refunded')),
    ADD CONSTRAINT idempotency_keys_order
        CHECK (answer NOT IN ('accepted', 'refunded') OR order_id IS NOT NULL);
