-- The stored answer of an idempotent checkout is a business outcome, not an HTTP
-- response: `answer` names it ('accepted') and `order_id` is the order it created.
-- The HTTP layer says how it is sent. Rows written before kept status 202 and the
-- body {"order_id": …, "status": "pending_payment"}: they become 'accepted' with
-- the body's order id, and replay as before. Any other status was never written;
-- one would make SET NOT NULL fail rather than replay wrongly.
ALTER TABLE idempotency_keys
    ADD COLUMN answer   text,
    ADD COLUMN order_id text;

UPDATE idempotency_keys
SET answer   = CASE status WHEN 202 THEN 'accepted' END,
    order_id = body::jsonb ->> 'order_id';

ALTER TABLE idempotency_keys
    ALTER answer SET NOT NULL,
    DROP COLUMN status,
    DROP COLUMN body,
    ADD CONSTRAINT idempotency_keys_answer CHECK (answer IN ('accepted')),
    ADD CONSTRAINT idempotency_keys_order CHECK (answer <> 'accepted' OR order_id IS NOT NULL);
