-- The sale core: accounts, the catalogue, holds and sales.
-- Times are Unix milliseconds (INTEGER): the hold path compares them constantly, and
-- integers compare and index faster than text. Ids are the domain's opaque strings.

-- Key/value settings shared by every process on this database (the token key).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('customer', 'admin')),
    created_at    INTEGER NOT NULL
);
-- Named so the store can map its violation to `email_taken`.
CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE venues (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    -- JSON array of section names, in the order given.
    sections   TEXT NOT NULL,
    seat_count INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE seats (
    id        TEXT PRIMARY KEY,
    venue_id  TEXT NOT NULL REFERENCES venues (id),
    -- The venue's seat order; an event's layout order follows it.
    position  INTEGER NOT NULL,
    section   TEXT NOT NULL,
    row_label TEXT NOT NULL,
    label     TEXT NOT NULL,
    x         INTEGER NOT NULL,
    y         INTEGER NOT NULL,
    UNIQUE (venue_id, position),
    UNIQUE (venue_id, section, row_label, label)
);

CREATE TABLE events (
    id                    TEXT PRIMARY KEY,
    venue_id              TEXT NOT NULL REFERENCES venues (id),
    name                  TEXT NOT NULL,
    starts_at             INTEGER NOT NULL,
    sale_starts_at        INTEGER,
    sale_ends_at          INTEGER,
    status                TEXT NOT NULL CHECK (status IN ('draft', 'on_sale', 'paused', 'ended')),
    hold_ttl_seconds      INTEGER NOT NULL CHECK (hold_ttl_seconds > 0),
    max_tickets_per_order INTEGER NOT NULL CHECK (max_tickets_per_order > 0),
    currency              TEXT NOT NULL,
    seat_count            INTEGER NOT NULL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);

-- Reserved-seat price tiers; `sections` is a JSON array of section names.
CREATE TABLE price_tiers (
    id       TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events (id),
    position INTEGER NOT NULL,
    name     TEXT NOT NULL,
    amount   INTEGER NOT NULL CHECK (amount >= 0),
    currency TEXT NOT NULL,
    sections TEXT NOT NULL,
    UNIQUE (event_id, position)
);

-- General-admission tiers. `sold` is moved only by conditional updates, and the
-- CHECK refuses a sale past capacity even if a hold engine allowed one.
CREATE TABLE ga_tiers (
    id       TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events (id),
    position INTEGER NOT NULL,
    name     TEXT NOT NULL,
    amount   INTEGER NOT NULL CHECK (amount >= 0),
    currency TEXT NOT NULL,
    capacity INTEGER NOT NULL CHECK (capacity > 0),
    sold     INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT ga_capacity CHECK (sold >= 0 AND sold <= capacity),
    UNIQUE (event_id, position)
);

-- The seats an event sells, in layout order (seat_index), with their tier.
CREATE TABLE event_seats (
    event_id   TEXT NOT NULL REFERENCES events (id),
    seat_index INTEGER NOT NULL,
    seat_id    TEXT NOT NULL REFERENCES seats (id),
    tier_id    TEXT NOT NULL REFERENCES price_tiers (id),
    PRIMARY KEY (event_id, seat_index),
    UNIQUE (event_id, seat_id)
) WITHOUT ROWID;

CREATE TABLE holds (
    id          TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL REFERENCES events (id),
    customer_id TEXT NOT NULL REFERENCES users (id),
    -- 'active' past expires_at reads as expired; the sweeper records it later.
    status      TEXT NOT NULL CHECK (status IN ('active', 'released', 'expired', 'converted')),
    ga_tier_id  TEXT REFERENCES ga_tiers (id),
    quantity    INTEGER NOT NULL CHECK (quantity > 0),
    amount      INTEGER NOT NULL,
    currency    TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
-- The rebuild reads an event's live holds; the sweeper finds due ones.
CREATE INDEX holds_event_live ON holds (event_id, expires_at) WHERE status = 'active';
CREATE INDEX holds_due ON holds (expires_at) WHERE status = 'active';

-- A seat hold's seats, in the order the buyer asked for them.
CREATE TABLE hold_seats (
    hold_id  TEXT NOT NULL REFERENCES holds (id),
    position INTEGER NOT NULL,
    seat_id  TEXT NOT NULL,
    PRIMARY KEY (hold_id, position)
) WITHOUT ROWID;

-- One row per seat sold. The primary key is what makes a double sale impossible,
-- whatever any hold engine decided.
CREATE TABLE sold_seats (
    event_id TEXT NOT NULL REFERENCES events (id),
    seat_id  TEXT NOT NULL,
    hold_id  TEXT NOT NULL REFERENCES holds (id),
    sold_at  INTEGER NOT NULL,
    PRIMARY KEY (event_id, seat_id)
) WITHOUT ROWID;
