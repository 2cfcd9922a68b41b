-- 007_setlist_refresh: what an incremental crawl needs to know about each stored setlist.
--
-- content_hash: a digest of the page as parsed (scrapers.crawl.refresh.content_hash), so that a
--   re-fetched page that did not change writes nothing.
-- row_count: how many rows the page had; rows past it were removed on the site.
-- checked_at: when the page was last read completely. A setlist is "known" (the crawl skips it)
--   only when this is set: a bare setlist row made for orphan track rows is not known.
--
-- Setlists stored before this migration were written whole by the spider: they count as known,
-- checked when they were last updated, with no hash (their next refresh rewrites them once).
-- Run with: psql -v ON_ERROR_STOP=1 -f migrations/007_setlist_refresh.sql
BEGIN;

ALTER TABLE setlists ADD COLUMN IF NOT EXISTS content_hash text;
ALTER TABLE setlists ADD COLUMN IF NOT EXISTS row_count integer CHECK (row_count >= 0);
ALTER TABLE setlists ADD COLUMN IF NOT EXISTS checked_at timestamptz;

UPDATE setlists SET checked_at = updated_at
WHERE checked_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM schema_migrations WHERE migration_name = '007_setlist_refresh');

INSERT INTO schema_migrations (migration_name) VALUES ('007_setlist_refresh')
ON CONFLICT (migration_name) DO NOTHING;

COMMIT;
