-- The sales read model (issue 13): counts per event × tier × minute, kept by the
-- analytics worker apart from the write tables (which it never changes and the
-- sales endpoint never reads). tier '*' holds the event's totals.
CREATE TABLE sales_minutes (
    event_id         TEXT NOT NULL,
    tier             TEXT NOT NULL,
    minute           INTEGER NOT NULL,     -- Unix seconds, a multiple of 60
    tickets          INTEGER NOT NULL DEFAULT 0,
    revenue          INTEGER NOT NULL DEFAULT 0,
    holds_made       INTEGER NOT NULL DEFAULT 0,
    holds_converted  INTEGER NOT NULL DEFAULT 0,
    holds_expired    INTEGER NOT NULL DEFAULT 0,
    refunds          INTEGER NOT NULL DEFAULT 0,
    refunded_amount  INTEGER NOT NULL DEFAULT 0,
    tickets_refunded INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, tier, minute)
) WITHOUT ROWID;

-- Messages counted, written in the transaction that counts them: a redelivery
-- finds its id and counts nothing.
CREATE TABLE sales_messages (message_id TEXT PRIMARY KEY) WITHOUT ROWID;

-- The per-event totals they replace (net tickets and revenue) are gone; the read
-- model starts from the messages counted from now on.
DROP TABLE event_sales;
DROP TABLE stats_messages;
