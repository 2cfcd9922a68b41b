-- Roll back 011_explore_indexes: drops the explorer's indexes; nothing of the catalogue is lost
-- (transitions are computed at query time, so there is no table to drop). The pg_trgm extension
-- stays: other objects of the database may use it, and it holds no data.
-- Run with: psql -v ON_ERROR_STOP=1 -f migrations/011_explore_indexes_down.sql
BEGIN;

SET LOCAL lock_timeout = '30s';

DROP INDEX IF EXISTS idx_track_lookup_search;
DROP INDEX IF EXISTS idx_track_lookup_words;
DROP INDEX IF EXISTS idx_setlist_tracks_played_by_track;
DROP INDEX IF EXISTS idx_setlist_tracks_played_in_order;
DROP INDEX IF EXISTS idx_setlist_tracks_attached_by_track;
DROP INDEX IF EXISTS idx_setlist_tracks_attached_in_order;
DROP INDEX IF EXISTS idx_setlists_djs;
DROP INDEX IF EXISTS idx_setlists_source_id;

DELETE FROM schema_migrations WHERE migration_name = '011_explore_indexes';

COMMIT;
