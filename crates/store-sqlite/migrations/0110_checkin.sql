-- Check-in (issue 13): signed ticket codes, scans at the gates.
--
-- The ticket signing keys: global, numbered (`kid`, one byte in every code), the
-- newest signs and all verify, so a rotation keeps issued tickets valid. The seed
-- is sealed with the server secret: a copy of the database cannot sign tickets.
CREATE TABLE ticket_keys (
    kid         INTEGER PRIMARY KEY CHECK (kid BETWEEN 1 AND 255),
    public_key  BLOB NOT NULL CHECK (length(public_key) = 32),
    sealed_seed TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- A ticket's first admission. Set by the one conditional UPDATE that admits it
-- (`WHERE checked_in_at IS NULL AND voided_at IS NULL`): with SQLite's single
-- writer two gates cannot both see it unset.
ALTER TABLE tickets ADD COLUMN checked_in_at INTEGER;
ALTER TABLE tickets ADD COLUMN checked_in_gate TEXT;
-- The sealed per-ticket secret of rotating codes; made when first asked for.
ALTER TABLE tickets ADD COLUMN rotating_secret TEXT;
-- The offline bundle lists an event's tickets.
CREATE INDEX tickets_event ON tickets (event_id);

-- Every scan, kept under its scanner's id for it so a repeat answers the same.
-- `first_at`/`first_gate`: the admission an `already_used` scan ran into.
CREATE TABLE checkin_scans (
    scanned_by  TEXT NOT NULL REFERENCES users (id),
    scan_id     TEXT NOT NULL,
    event_id    TEXT,
    ticket_id   TEXT,
    gate        TEXT NOT NULL,
    scanned_at  INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    offline     INTEGER NOT NULL CHECK (offline IN (0, 1)),
    result      TEXT NOT NULL CHECK (result IN ('ok', 'already_used', 'voided', 'wrong_event', 'invalid')),
    first_at    INTEGER,
    first_gate  TEXT,
    PRIMARY KEY (scanned_by, scan_id)
) WITHOUT ROWID;

-- Per event: tickets show a code that changes every 15 s (off unless asked for).
ALTER TABLE events ADD COLUMN rotating_codes INTEGER NOT NULL DEFAULT 0 CHECK (rotating_codes IN (0, 1));
