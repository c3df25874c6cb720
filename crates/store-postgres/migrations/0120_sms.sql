-- SMS delivery (issue 13): the phone a buyer may give at checkout (E.164, checked
-- by the app and again here; NULL: no SMS), and one row per SMS sent, by outbox
-- message id, so a redelivered job does not send it again (as `emails_sent` does
-- for email). Adding a nullable column without a default rewrites nothing.
ALTER TABLE orders ADD COLUMN phone text
    CONSTRAINT orders_phone_e164 CHECK (phone ~ '^\+[1-9][0-9]{1,14}$');

CREATE TABLE sms_sent (
    message_id text PRIMARY KEY,
    sent_at    timestamptz NOT NULL
);
