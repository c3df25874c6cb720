-- Refresh-token families (one per login). Each refresh moves a session to the next
-- generation with a new token; only the SHA-256 of the current token is kept. A
-- token of an earlier generation coming back is a replay: the session is revoked.
CREATE TABLE sessions (
    id          text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (id),
    generation  bigint NOT NULL CHECK (generation >= 0),
    token_hash  text NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;
