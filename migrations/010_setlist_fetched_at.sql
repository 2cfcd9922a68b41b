-- 010_setlist_fetched_at: when the stored version of each setlist was fetched, so that of two
-- fetches of one set the newest wins (issue 19).
--
-- fetched_at: when the page whose rows and fields are stored was fetched (the crawl's
--   SetlistItem.fetched_at / TrackItem.fetched_at, carried into spool files). The batch writer
--   never lets a setlist or row fetched earlier overwrite a set stored from a later fetch: a
--   spool written during an outage and replayed after a newer crawl stores its tracks, but not
--   its old rows and fields, and leaves checked_at alone.
--
-- Setlists stored before this migration take the time they were last checked (the writer set
-- checked_at when it stored a whole page, at or after its fetch): a spool written before this
-- migration, whose items do not say when they were fetched, then never undoes them.
-- Run with: psql -v ON_ERROR_STOP=1 -f migrations/010_setlist_fetched_at.sql
BEGIN;

SET LOCAL lock_timeout = '30s';

ALTER TABLE setlists ADD COLUMN IF NOT EXISTS fetched_at timestamptz;

UPDATE setlists SET fetched_at = checked_at
WHERE fetched_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM schema_migrations WHERE migration_name = '010_setlist_fetched_at');

INSERT INTO schema_migrations (migration_name) VALUES ('010_setlist_fetched_at')
ON CONFLICT (migration_name) DO NOTHING;

COMMIT;
