-- Checkout: orders, tickets, payments, idempotency keys, the transactional outbox
-- and the jobs it fans out to, and what the audit and analytics workers record.

-- Holds: a converted hold (its order's payment runs) is sold when the payment
-- succeeds; sold_at records that, since the status CHECK of 0001 cannot be changed
-- in place. ttl_expires_at keeps the deadline the buyer was given, restored when a
-- payment fails (expires_at moves to the payment deadline while a payment runs).
ALTER TABLE holds ADD COLUMN ttl_expires_at INTEGER;
ALTER TABLE holds ADD COLUMN sold_at INTEGER;
UPDATE holds SET ttl_expires_at = expires_at;
-- 0001's sell path marked sold holds 'converted' without an order: they are sold.
UPDATE holds SET sold_at = updated_at WHERE status = 'converted';
DROP INDEX holds_event_live;
-- What an engine rebuild reads: holds that still keep their seats unsold.
CREATE INDEX holds_event_live ON holds (event_id, expires_at)
    WHERE status IN ('active', 'converted') AND sold_at IS NULL;

CREATE TABLE orders (
    id            TEXT PRIMARY KEY,
    customer_id   TEXT NOT NULL REFERENCES users (id),
    event_id      TEXT NOT NULL REFERENCES events (id),
    hold_id       TEXT NOT NULL REFERENCES holds (id),
    email         TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending_payment', 'paid', 'failed', 'refunded', 'cancelled')),
    failure_code  TEXT,
    amount        INTEGER NOT NULL CHECK (amount >= 0),
    currency      TEXT NOT NULL,
    payment_token TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
-- A hold backs at most one order that is pending or paid; a failed one may be retried.
CREATE UNIQUE INDEX orders_live_hold ON orders (hold_id) WHERE status IN ('pending_payment', 'paid');
CREATE INDEX orders_customer ON orders (customer_id, created_at);
CREATE INDEX orders_pending ON orders (created_at) WHERE status = 'pending_payment';

CREATE TABLE order_items (
    order_id TEXT NOT NULL REFERENCES orders (id),
    position INTEGER NOT NULL,
    seat_id  TEXT,
    tier_id  TEXT NOT NULL,
    amount   INTEGER NOT NULL,
    currency TEXT NOT NULL,
    PRIMARY KEY (order_id, position)
) WITHOUT ROWID;

CREATE TABLE tickets (
    id        TEXT PRIMARY KEY,
    order_id  TEXT NOT NULL REFERENCES orders (id),
    position  INTEGER NOT NULL,
    event_id  TEXT NOT NULL REFERENCES events (id),
    seat_id   TEXT,
    tier_id   TEXT NOT NULL,
    amount    INTEGER NOT NULL,
    currency  TEXT NOT NULL,
    -- What the door scans; unguessable and unique.
    code      TEXT NOT NULL UNIQUE,
    issued_at INTEGER NOT NULL,
    UNIQUE (order_id, position)
);
-- Belt and braces beside sold_seats: a seat is on one ticket per event.
CREATE UNIQUE INDEX tickets_seat ON tickets (event_id, seat_id) WHERE seat_id IS NOT NULL;

-- One succeeded charge per paid order.
CREATE TABLE payments (
    order_id   TEXT PRIMARY KEY REFERENCES orders (id),
    charge_id  TEXT NOT NULL UNIQUE,
    amount     INTEGER NOT NULL,
    currency   TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Answers to idempotent requests, scoped to (user, route): replayed for the same
-- key and request, refused for the same key and another request.
CREATE TABLE idempotency_keys (
    user_id     TEXT NOT NULL,
    route       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status      INTEGER NOT NULL,
    body        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, route, key)
) WITHOUT ROWID;

-- The transactional outbox: written in the same transaction as the change it
-- announces. Its id is the de-duplication id downstream.
CREATE TABLE outbox (
    id         TEXT PRIMARY KEY,
    topic      TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- The embedded queue: one row per (message, consumer). A claim leases a row; an
-- expired lease makes it claimable again (the worker died), so delivery is at
-- least once. 'dead' rows gave up after too many attempts and wait for an operator.
CREATE TABLE jobs (
    message_id   TEXT NOT NULL REFERENCES outbox (id),
    consumer     TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('ready', 'done', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    available_at INTEGER NOT NULL,
    lease_until  INTEGER,
    last_error   TEXT,
    enqueued_at  INTEGER NOT NULL,
    done_at      INTEGER,
    PRIMARY KEY (message_id, consumer)
) WITHOUT ROWID;
CREATE INDEX jobs_due ON jobs (consumer, available_at) WHERE state = 'ready';

-- Written by the audit worker, once per message.
CREATE TABLE audit_log (
    message_id TEXT PRIMARY KEY,
    at         INTEGER NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL
);

-- Counted by the analytics worker; `stats_messages` makes each message count once.
CREATE TABLE event_sales (
    event_id TEXT PRIMARY KEY REFERENCES events (id),
    tickets  INTEGER NOT NULL DEFAULT 0,
    revenue  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE stats_messages (message_id TEXT PRIMARY KEY) WITHOUT ROWID;

-- Emails sent, once per message (a crash between send and this row may send twice:
-- the Message-ID header carries the message id so mail clients can tell).
CREATE TABLE emails_sent (
    message_id TEXT PRIMARY KEY,
    sent_at    INTEGER NOT NULL
) WITHOUT ROWID;
