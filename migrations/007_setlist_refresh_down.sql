-- Roll back 007_setlist_refresh: the columns only steer the crawler; without them every stored
-- setlist is fetched again by a crawl that finds it, and nothing of the catalogue is lost.
BEGIN;

ALTER TABLE setlists DROP COLUMN IF EXISTS checked_at;
ALTER TABLE setlists DROP COLUMN IF EXISTS row_count;
ALTER TABLE setlists DROP COLUMN IF EXISTS content_hash;

DELETE FROM schema_migrations WHERE migration_name = '007_setlist_refresh';

COMMIT;
