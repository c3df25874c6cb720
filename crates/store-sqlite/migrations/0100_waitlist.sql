-- The waitlist (issue 12): one row per place in an event's line. `seq` is the line's
-- order (the single writer hands it out); a customer has at most one live entry
-- (waiting, claimed, offered) per event, so joining twice finds the first.
-- `hold_id` names the offer's hold: while `claimed`, the hold a node is making
-- (until `claim_until`, then another node finishes or gives back the claim).
CREATE TABLE waitlist (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    event_id         TEXT NOT NULL REFERENCES events (id),
    customer_id      TEXT NOT NULL REFERENCES users (id),
    email            TEXT NOT NULL,
    tier_id          TEXT,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    state            TEXT NOT NULL CHECK (state IN ('waiting', 'claimed', 'offered', 'converted', 'expired', 'left')),
    hold_id          TEXT,
    offer_expires_at INTEGER,
    claim_until      INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX waitlist_live_customer ON waitlist (event_id, customer_id)
    WHERE state IN ('waiting', 'claimed', 'offered');
-- The offering pass reads the live line of each event that has one.
CREATE INDEX waitlist_live ON waitlist (event_id, seq)
    WHERE state IN ('waiting', 'claimed', 'offered');
