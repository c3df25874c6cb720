-- Event search (issue 11): events gain a city, a category and a description, and a
-- full-text index over them and the name: a generated tsvector (English stemming:
-- "concerts" finds "concert"; the name weighs most) under a GIN index.
ALTER TABLE events
    ADD COLUMN city text,
    ADD COLUMN category text,
    ADD COLUMN description text;

ALTER TABLE events ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', coalesce(name, '')), 'A')
    || setweight(to_tsvector('english', coalesce(city, '') || ' ' || coalesce(category, '')), 'B')
    || setweight(to_tsvector('english', coalesce(description, '')), 'C')
) STORED;

CREATE INDEX events_search ON events USING gin (search);
-- Browsing pages through events in (starts_at, id) order; city and category are
-- matched case-insensitively.
CREATE INDEX events_browse ON events (starts_at, id);
CREATE INDEX events_city ON events (lower(city));
CREATE INDEX events_category ON events (lower(category));
