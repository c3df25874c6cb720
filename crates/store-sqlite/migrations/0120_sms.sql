-- SMS delivery (issue 13): the phone a buyer may give at checkout (E.164, checked
-- by the app; NULL: no SMS), and one row per SMS sent, by outbox message id, so a
-- redelivered job does not send it again (as `emails_sent` does for email).
ALTER TABLE orders ADD COLUMN phone TEXT
    CHECK (phone IS NULL OR (phone GLOB '+[1-9]*' AND length(phone) BETWEEN 3 AND 16));

CREATE TABLE sms_sent (
    message_id TEXT PRIMARY KEY,
    sent_at    INTEGER NOT NULL
) WITHOUT ROWID;
