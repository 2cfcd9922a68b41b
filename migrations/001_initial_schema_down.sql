-- Undo 001_initial_schema: drops the catalogue. Later migrations must be rolled back first.
BEGIN;
DROP TABLE IF EXISTS identifier_conflicts;
DROP TABLE IF EXISTS rejected_items;
DROP TABLE IF EXISTS track_lookup;
DROP TABLE IF EXISTS setlist_tracks;
DROP TABLE IF EXISTS setlists;
DROP TABLE IF EXISTS track_artists;
DROP TABLE IF EXISTS artists;
DROP TABLE IF EXISTS tracks;
DELETE FROM schema_migrations WHERE migration_name = '001_initial_schema';
COMMIT;
