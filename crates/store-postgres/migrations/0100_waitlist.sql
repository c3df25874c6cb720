-- The waitlist (issue 12): one row per place in an event's line. `seq` is the line's
-- order; a customer has at most one live entry (waiting, claimed, offered) per
-- event, so joining twice (even at once, on two nodes) finds the first.
-- `hold_id` names the offer's hold: while `claimed`, the hold a node is making
-- (until `claim_until`, then another node finishes or gives back the claim).
CREATE TABLE waitlist (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               text NOT NULL UNIQUE,
    event_id         text NOT NULL REFERENCES events (id),
    customer_id      text NOT NULL REFERENCES users (id),
    email            text NOT NULL,
    tier_id          text,
    quantity         integer NOT NULL CHECK (quantity > 0),
    state            text NOT NULL CHECK (state IN ('waiting', 'claimed', 'offered', 'converted', 'expired', 'left')),
    hold_id          text,
    offer_expires_at timestamptz,
    claim_until      timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE UNIQUE INDEX waitlist_live_customer ON waitlist (event_id, customer_id)
    WHERE state IN ('waiting', 'claimed', 'offered');
CREATE INDEX waitlist_live ON waitlist (event_id, seq)
    WHERE state IN ('waiting', 'claimed', 'offered');
