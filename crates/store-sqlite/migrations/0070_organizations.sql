-- Organizations and roles (issue 10). Organizers and check-in staff belong to an
-- organization; venues and events are owned by one. Everything made before this
-- migration (and the demo) belongs to the default organization.
CREATE TABLE organizations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
INSERT INTO organizations (id, name, created_at)
VALUES ('org_00000000000000000000000000', 'Default organization',
        CAST(strftime('%s', 'now') AS INTEGER) * 1000);

-- The CHECK on users.role (customer, admin) cannot change without rebuilding the
-- table that every sale references: the newer roles live in staff_role, which
-- wins over role when set (rows.rs). role stays 'customer' for them, so nothing
-- that asks for admins (role = 'admin') sees them.
ALTER TABLE users ADD COLUMN staff_role TEXT
    CHECK (staff_role IN ('organizer', 'checkin', 'ops'));
ALTER TABLE users ADD COLUMN org_id TEXT REFERENCES organizations (id);

-- SQLite adds a column with a REFERENCES clause only with a NULL default, so the
-- owner of venues and events is checked by the application (the PostgreSQL store
-- has the foreign key).
ALTER TABLE venues ADD COLUMN org_id TEXT NOT NULL DEFAULT 'org_00000000000000000000000000';
ALTER TABLE events ADD COLUMN org_id TEXT NOT NULL DEFAULT 'org_00000000000000000000000000';

-- Invitations: only the SHA-256 of the emailed token is kept. Accepting marks
-- accepted_at in the transaction that creates (or promotes) the account.
CREATE TABLE invitations (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id),
    email       TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('organizer', 'checkin', 'ops', 'admin')),
    token_hash  TEXT NOT NULL UNIQUE,
    invited_by  TEXT NOT NULL REFERENCES users (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    accepted_at INTEGER
);

-- Password resets: the SHA-256 of the emailed token, used once before expires_at.
CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);

-- Check-in staff assigned to an event (they scan its tickets, nothing else).
CREATE TABLE event_staff (
    event_id    TEXT NOT NULL REFERENCES events (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    assigned_at INTEGER NOT NULL,
    PRIMARY KEY (event_id, user_id)
);
