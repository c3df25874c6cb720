-- The sales read model (issue 13): counts per event × tier × minute, kept by the
-- analytics worker apart from the write tables. tier '*' holds the event's totals.
CREATE TABLE sales_minutes (
    event_id         text NOT NULL,
    tier             text NOT NULL,
    minute           timestamptz NOT NULL,
    tickets          bigint NOT NULL DEFAULT 0,
    revenue          bigint NOT NULL DEFAULT 0,
    holds_made       bigint NOT NULL DEFAULT 0,
    holds_converted  bigint NOT NULL DEFAULT 0,
    holds_expired    bigint NOT NULL DEFAULT 0,
    refunds          bigint NOT NULL DEFAULT 0,
    refunded_amount  bigint NOT NULL DEFAULT 0,
    tickets_refunded bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, tier, minute)
);

-- Messages counted, inserted by the statement that counts them: a redelivery
-- finds its id and counts nothing.
CREATE TABLE sales_messages (message_id text PRIMARY KEY);

-- The net per-event totals they replace are gone.
DROP TABLE event_sales;
DROP TABLE stats_messages;
