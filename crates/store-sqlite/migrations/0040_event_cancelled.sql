-- Cancellation of an event (issue 8). The `status` CHECK of `events` cannot change
-- without rebuilding the table, so a cancelled event is `cancelled_at` set, and
-- reads as status 'cancelled' (rows.rs). Final: nothing clears it.
ALTER TABLE events ADD COLUMN cancelled_at INTEGER;

-- From the cancellation's commit on, the event sells nothing more, whatever a
-- node's cached copy of the event says: a new hold, a checkout's order and an
-- order's payment are refused (a trigger constraint named `event_cancelled`; the
-- store maps it to Conflict). The single writer puts every write wholly before
-- the cancellation (its job then finds it) or after it (refused).
CREATE TRIGGER holds_event_cancelled BEFORE INSERT ON holds
WHEN (SELECT cancelled_at FROM events WHERE id = NEW.event_id) IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'event_cancelled');
END;

CREATE TRIGGER orders_event_cancelled BEFORE INSERT ON orders
WHEN (SELECT cancelled_at FROM events WHERE id = NEW.event_id) IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'event_cancelled');
END;

CREATE TRIGGER orders_paid_event_cancelled BEFORE UPDATE OF status ON orders
WHEN NEW.status = 'paid' AND OLD.status <> 'paid'
    AND (SELECT cancelled_at FROM events WHERE id = NEW.event_id) IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'event_cancelled');
END;

-- The cancellation job's pages: an event's paid orders, its live holds.
CREATE INDEX orders_event_status ON orders (event_id, status);
CREATE INDEX holds_event_active ON holds (event_id, expires_at) WHERE status = 'active';
