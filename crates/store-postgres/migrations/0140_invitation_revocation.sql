-- An invitation can be withdrawn before it is used: revoked_at set, never
-- accepted after (accept_invitation's conditional update checks it). Listing an
-- organization's invitations, newest first, reads the org index.
ALTER TABLE invitations ADD COLUMN revoked_at timestamptz;
CREATE INDEX invitations_org ON invitations (org_id, created_at DESC);
