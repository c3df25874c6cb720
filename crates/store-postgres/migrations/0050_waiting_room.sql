-- Virtual waiting room (issue 12): an event's room settings as JSON (the domain's
-- WaitingRoomSettings: enabled, admission_per_minute, max_active_shoppers,
-- session_seconds, pre_queue_opens_at, challenge_difficulty); NULL: never set.
-- Read with the event only, never queried inside, so one text column, not six. The
-- queue itself is not here: it lives in the waiting room adapter (Redis).
ALTER TABLE events ADD COLUMN waiting_room text;
