-- The embedded node keeps its token key in <data_dir>/secret.key (0600), outside
-- the database, so that a copy of the database cannot mint tokens. A key an earlier
-- version generated here is dropped: tokens it signed stop working, and their
-- users log in again.
DELETE FROM settings WHERE key = 'token_key';
