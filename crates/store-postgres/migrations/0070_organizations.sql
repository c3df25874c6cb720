-- Organizations and roles (issue 10). Organizers and check-in staff belong to an
-- organization; venues and events are owned by one. Everything made before this
-- migration (and the demo) belongs to the default organization.
CREATE TABLE organizations (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO organizations (id, name, created_at)
VALUES ('org_00000000000000000000000000', 'Default organization', now());

ALTER TABLE users
    DROP CONSTRAINT IF EXISTS users_role_check,
    ADD CONSTRAINT users_role CHECK (role IN ('customer', 'organizer', 'checkin', 'ops', 'admin')),
    ADD COLUMN org_id text REFERENCES organizations (id);

ALTER TABLE venues
    ADD COLUMN org_id text NOT NULL DEFAULT 'org_00000000000000000000000000'
        REFERENCES organizations (id);
ALTER TABLE events
    ADD COLUMN org_id text NOT NULL DEFAULT 'org_00000000000000000000000000'
        REFERENCES organizations (id);

-- Invitations: only the SHA-256 of the emailed token is kept. Accepting marks
-- accepted_at in the transaction that creates (or promotes) the account.
CREATE TABLE invitations (
    id          text PRIMARY KEY,
    org_id      text NOT NULL REFERENCES organizations (id),
    email       text NOT NULL,
    role        text NOT NULL CHECK (role IN ('organizer', 'checkin', 'ops', 'admin')),
    token_hash  text NOT NULL UNIQUE,
    invited_by  text NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz
);

-- Password resets: the SHA-256 of the emailed token, used once before expires_at.
CREATE TABLE password_resets (
    token_hash text PRIMARY KEY,
    user_id    text NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

-- Check-in staff assigned to an event (they scan its tickets, nothing else).
CREATE TABLE event_staff (
    event_id    text NOT NULL REFERENCES events (id),
    user_id     text NOT NULL REFERENCES users (id),
    assigned_at timestamptz NOT NULL,
    PRIMARY KEY (event_id, user_id)
);
