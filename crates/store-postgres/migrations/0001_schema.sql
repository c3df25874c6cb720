-- boxoffice on PostgreSQL: accounts, catalogue, holds and sales, orders, the outbox
-- and its job queue. Times are Unix milliseconds (BIGINT), as in the SQLite store,
-- so both adapters hand the app the same values; every integer is BIGINT because
-- the code reads them as i64. Ids are the domain's opaque strings.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('customer', 'admin')),
    created_at    BIGINT NOT NULL,
    CONSTRAINT users_email UNIQUE (email)
);

CREATE TABLE venues (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    sections   TEXT NOT NULL,
    seat_count BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE seats (
    id        TEXT PRIMARY KEY,
    venue_id  TEXT NOT NULL REFERENCES venues (id),
    position  BIGINT NOT NULL,
    section   TEXT NOT NULL,
    row_label TEXT NOT NULL,
    label     TEXT NOT NULL,
    x         BIGINT NOT NULL,
    y         BIGINT NOT NULL,
    UNIQUE (venue_id, position),
    UNIQUE (venue_id, section, row_label, label)
);

CREATE TABLE events (
    id                    TEXT PRIMARY KEY,
    venue_id              TEXT NOT NULL REFERENCES venues (id),
    name                  TEXT NOT NULL,
    starts_at             BIGINT NOT NULL,
    sale_starts_at        BIGINT,
    sale_ends_at          BIGINT,
    status                TEXT NOT NULL CHECK (status IN ('draft', 'on_sale', 'paused', 'ended')),
    hold_ttl_seconds      BIGINT NOT NULL CHECK (hold_ttl_seconds > 0),
    max_tickets_per_order BIGINT NOT NULL CHECK (max_tickets_per_order > 0),
    currency              TEXT NOT NULL,
    seat_count            BIGINT NOT NULL,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);

CREATE TABLE price_tiers (
    id       TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events (id),
    position BIGINT NOT NULL,
    name     TEXT NOT NULL,
    amount   BIGINT NOT NULL CHECK (amount >= 0),
    currency TEXT NOT NULL,
    sections TEXT NOT NULL,
    UNIQUE (event_id, position)
);

-- `sold` moves only by `sold = sold + n` (atomic under the row lock), and the
-- CHECK refuses a sale past capacity even if a hold engine allowed one.
CREATE TABLE ga_tiers (
    id       TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events (id),
    position BIGINT NOT NULL,
    name     TEXT NOT NULL,
    amount   BIGINT NOT NULL CHECK (amount >= 0),
    currency TEXT NOT NULL,
    capacity BIGINT NOT NULL CHECK (capacity > 0),
    sold     BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT ga_capacity CHECK (sold >= 0 AND sold <= capacity),
    UNIQUE (event_id, position)
);

CREATE TABLE event_seats (
    event_id   TEXT NOT NULL REFERENCES events (id),
    seat_index BIGINT NOT NULL,
    seat_id    TEXT NOT NULL REFERENCES seats (id),
    tier_id    TEXT NOT NULL REFERENCES price_tiers (id),
    PRIMARY KEY (event_id, seat_index),
    UNIQUE (event_id, seat_id)
);

-- A converted hold belongs to an order whose payment runs; sold_at marks it sold.
-- ttl_expires_at keeps the buyer's deadline, restored when a payment fails.
CREATE TABLE holds (
    id             TEXT PRIMARY KEY,
    event_id       TEXT NOT NULL REFERENCES events (id),
    customer_id    TEXT NOT NULL REFERENCES users (id),
    status         TEXT NOT NULL CHECK (status IN ('active', 'released', 'expired', 'converted')),
    ga_tier_id     TEXT REFERENCES ga_tiers (id),
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    amount         BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    ttl_expires_at BIGINT,
    sold_at        BIGINT
);
CREATE INDEX holds_event_live ON holds (event_id, expires_at)
    WHERE status IN ('active', 'converted') AND sold_at IS NULL;
CREATE INDEX holds_due ON holds (expires_at) WHERE status = 'active';

CREATE TABLE hold_seats (
    hold_id  TEXT NOT NULL REFERENCES holds (id),
    position BIGINT NOT NULL,
    seat_id  TEXT NOT NULL,
    PRIMARY KEY (hold_id, position)
);

-- One row per seat sold: the primary key makes a double sale impossible.
CREATE TABLE sold_seats (
    event_id TEXT NOT NULL REFERENCES events (id),
    seat_id  TEXT NOT NULL,
    hold_id  TEXT NOT NULL REFERENCES holds (id),
    sold_at  BIGINT NOT NULL,
    CONSTRAINT sold_seats_pkey PRIMARY KEY (event_id, seat_id)
);

CREATE TABLE orders (
    id            TEXT PRIMARY KEY,
    customer_id   TEXT NOT NULL REFERENCES users (id),
    event_id      TEXT NOT NULL REFERENCES events (id),
    hold_id       TEXT NOT NULL REFERENCES holds (id),
    email         TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending_payment', 'paid', 'failed', 'refunded', 'cancelled')),
    failure_code  TEXT,
    amount        BIGINT NOT NULL CHECK (amount >= 0),
    currency      TEXT NOT NULL,
    payment_token TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX orders_live_hold ON orders (hold_id) WHERE status IN ('pending_payment', 'paid');
CREATE INDEX orders_customer ON orders (customer_id, created_at);
CREATE INDEX orders_pending ON orders (created_at) WHERE status = 'pending_payment';

CREATE TABLE order_items (
    order_id TEXT NOT NULL REFERENCES orders (id),
    position BIGINT NOT NULL,
    seat_id  TEXT,
    tier_id  TEXT NOT NULL,
    amount   BIGINT NOT NULL,
    currency TEXT NOT NULL,
    PRIMARY KEY (order_id, position)
);

CREATE TABLE tickets (
    id        TEXT PRIMARY KEY,
    order_id  TEXT NOT NULL REFERENCES orders (id),
    position  BIGINT NOT NULL,
    event_id  TEXT NOT NULL REFERENCES events (id),
    seat_id   TEXT,
    tier_id   TEXT NOT NULL,
    amount    BIGINT NOT NULL,
    currency  TEXT NOT NULL,
    code      TEXT NOT NULL UNIQUE,
    issued_at BIGINT NOT NULL,
    UNIQUE (order_id, position)
);
CREATE UNIQUE INDEX tickets_seat ON tickets (event_id, seat_id) WHERE seat_id IS NOT NULL;

CREATE TABLE payments (
    order_id   TEXT PRIMARY KEY REFERENCES orders (id),
    charge_id  TEXT NOT NULL UNIQUE,
    amount     BIGINT NOT NULL,
    currency   TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE idempotency_keys (
    user_id     TEXT NOT NULL,
    route       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status      BIGINT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, route, key)
);

-- The transactional outbox; its id is the de-duplication id downstream (the NATS
-- relay publishes it as the message id).
CREATE TABLE outbox (
    id         TEXT PRIMARY KEY,
    topic      TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The store-as-queue: one row per (message, consumer), leased by claims.
CREATE TABLE jobs (
    message_id   TEXT NOT NULL REFERENCES outbox (id),
    consumer     TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('ready', 'done', 'dead')),
    attempts     BIGINT NOT NULL DEFAULT 0,
    available_at BIGINT NOT NULL,
    lease_until  BIGINT,
    last_error   TEXT,
    enqueued_at  BIGINT NOT NULL,
    done_at      BIGINT,
    PRIMARY KEY (message_id, consumer)
);
CREATE INDEX jobs_due ON jobs (consumer, available_at) WHERE state = 'ready';

CREATE TABLE audit_log (
    message_id TEXT PRIMARY KEY,
    at         BIGINT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL
);

CREATE TABLE event_sales (
    event_id TEXT PRIMARY KEY REFERENCES events (id),
    tickets  BIGINT NOT NULL DEFAULT 0,
    revenue  BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE stats_messages (message_id TEXT PRIMARY KEY);

CREATE TABLE emails_sent (
    message_id TEXT PRIMARY KEY,
    sent_at    BIGINT NOT NULL
);
