-- Per-buyer cap (issue 12): most tickets one customer may have at once across the
-- event's live holds and pending or paid orders; NULL: no cap. Recording a hold
-- counts the customer's holds that keep tickets (live, or converted: pending or
-- paid) through holds_customer, inside the writer's transaction.
ALTER TABLE events ADD COLUMN max_tickets_per_customer INTEGER
    CHECK (max_tickets_per_customer IS NULL OR max_tickets_per_customer > 0);
CREATE INDEX holds_customer ON holds (event_id, customer_id)
    WHERE status IN ('active', 'converted');
