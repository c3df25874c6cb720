-- Cancellation of an event (issue 8): status 'cancelled', final (the store refuses
-- any other status after it).
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_status_check;
ALTER TABLE events ADD CONSTRAINT events_status_check
    CHECK (status IN ('draft', 'on_sale', 'paused', 'ended', 'cancelled'));

-- From the cancellation's commit on, the event sells nothing more, whatever a
-- node's cached copy of the event says: a new hold, a checkout's order and an
-- order's payment are refused (check_violation on the constraint name
-- `event_cancelled`, which the store maps to Conflict). The event row is read
-- FOR SHARE: the cancellation's UPDATE waits for every transaction that recorded
-- a hold, an order or a payment of the event, and each one after it reads the
-- cancelled row. So a write racing the cancellation is either committed before
-- it (and the cancellation job, which starts after, sees it) or refused.
CREATE FUNCTION refuse_on_cancelled_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    s text;
BEGIN
    SELECT status INTO s FROM events WHERE id = NEW.event_id FOR SHARE;
    IF s = 'cancelled' THEN
        RAISE EXCEPTION 'event % is cancelled', NEW.event_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'event_cancelled';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER holds_event_cancelled BEFORE INSERT ON holds
    FOR EACH ROW EXECUTE FUNCTION refuse_on_cancelled_event();
CREATE TRIGGER orders_event_cancelled BEFORE INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION refuse_on_cancelled_event();
CREATE TRIGGER orders_paid_event_cancelled BEFORE UPDATE OF status ON orders
    FOR EACH ROW WHEN (NEW.status = 'paid' AND OLD.status <> 'paid')
    EXECUTE FUNCTION refuse_on_cancelled_event();

-- The cancellation job's pages: an event's paid orders, its live holds.
CREATE INDEX orders_event_status ON orders (event_id, status);
CREATE INDEX holds_event_active ON holds (event_id, expires_at) WHERE status = 'active';
