-- Check-in (issue 13): signed ticket codes, scans at the gates.
--
-- The ticket signing keys: global, numbered (`kid`, one byte in every code), the
-- newest signs and all verify, so a rotation keeps issued tickets valid. The seed
-- is sealed with the server secret: a copy of the database cannot sign tickets.
-- Nodes racing to make the first key insert kid 1 `ON CONFLICT DO NOTHING` and
-- read back the winner's.
CREATE TABLE ticket_keys (
    kid         smallint PRIMARY KEY CHECK (kid BETWEEN 1 AND 255),
    public_key  bytea NOT NULL CHECK (octet_length(public_key) = 32),
    sealed_seed text NOT NULL,
    created_at  timestamptz NOT NULL
);

-- A ticket's first admission, set by the one conditional UPDATE that admits it
-- (`WHERE checked_in_at IS NULL AND voided_at IS NULL`). Two gates at once: the
-- second UPDATE waits for the first's row lock, re-reads the row (READ COMMITTED)
-- and matches nothing, so one scan is `ok` and the other `already_used`.
ALTER TABLE tickets
    ADD COLUMN checked_in_at timestamptz,
    ADD COLUMN checked_in_gate text,
    -- The sealed per-ticket secret of rotating codes; made when first asked for.
    ADD COLUMN rotating_secret text;
-- The offline bundle lists an event's tickets (the seat index skips GA tickets).
CREATE INDEX tickets_event ON tickets (event_id);

-- Every scan, kept under its scanner's id for it so a repeat answers the same; the
-- primary key makes two copies of one scan sent at once record it once.
-- `first_at`/`first_gate`: the admission an `already_used` scan ran into.
CREATE TABLE checkin_scans (
    scanned_by  text NOT NULL REFERENCES users (id),
    scan_id     text NOT NULL,
    event_id    text,
    ticket_id   text,
    gate        text NOT NULL,
    scanned_at  timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    offline     boolean NOT NULL,
    result      text NOT NULL CHECK (result IN ('ok', 'already_used', 'voided', 'wrong_event', 'invalid')),
    first_at    timestamptz,
    first_gate  text,
    PRIMARY KEY (scanned_by, scan_id)
);

-- Per event: tickets show a code that changes every 15 s (off unless asked for).
ALTER TABLE events ADD COLUMN rotating_codes boolean NOT NULL DEFAULT false;
