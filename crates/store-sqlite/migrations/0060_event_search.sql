-- Event search (issue 11): events gain a city, a category and a description, and a
-- full-text index over them and the name. FTS5 with the Porter stemmer ("concerts"
-- finds "concert"), as a table of its own keyed by the event id (not by rowid:
-- events' rowids are not stable across VACUUM), kept in step by triggers.
ALTER TABLE events ADD COLUMN city TEXT;
ALTER TABLE events ADD COLUMN category TEXT;
ALTER TABLE events ADD COLUMN description TEXT;

-- Browsing pages through events in (starts_at, id) order.
CREATE INDEX events_browse ON events (starts_at, id);

CREATE VIRTUAL TABLE events_fts USING fts5(
    event_id UNINDEXED, name, description, city, category,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER events_fts_insert AFTER INSERT ON events BEGIN
    INSERT INTO events_fts (event_id, name, description, city, category)
    VALUES (new.id, new.name, new.description, new.city, new.category);
END;

CREATE TRIGGER events_fts_update AFTER UPDATE OF name, description, city, category ON events BEGIN
    DELETE FROM events_fts WHERE event_id = old.id;
    INSERT INTO events_fts (event_id, name, description, city, category)
    VALUES (new.id, new.name, new.description, new.city, new.category);
END;

CREATE TRIGGER events_fts_delete AFTER DELETE ON events BEGIN
    DELETE FROM events_fts WHERE event_id = old.id;
END;

-- Events made before this migration.
INSERT INTO events_fts (event_id, name, description, city, category)
SELECT id, name, description, city, category FROM events;
