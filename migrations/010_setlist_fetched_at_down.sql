-- Roll back 010_setlist_fetched_at: without the fetch times, a late spool replay can overwrite a
-- set stored from a newer fetch again; nothing of the catalogue is lost by dropping them.
-- Run with: psql -v ON_ERROR_STOP=1 -f migrations/010_setlist_fetched_at_down.sql
BEGIN;

SET LOCAL lock_timeout = '30s';

ALTER TABLE setlists DROP COLUMN IF EXISTS fetched_at;

DELETE FROM schema_migrations WHERE migration_name = '010_setlist_fetched_at';

COMMIT;
