-- Refresh-token families (one per login). Each refresh moves a session to the next
-- generation with a new token; only the SHA-256 of the current token is kept. A
-- token of an earlier generation coming back is a replay: the session is revoked.
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    generation  INTEGER NOT NULL CHECK (generation >= 0),
    token_hash  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;
