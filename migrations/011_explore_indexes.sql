-- 011_explore_indexes: what reading the catalogue needs (issue 20, scrapers/db/explore).
--
-- * Search over every spelling a track was stored under (track_lookup: "Artist Title"), so a
--   track is found by any of them: a full-text index of its words (a query's words, or all but
--   one of them, found in milliseconds), and a trigram index for typo-tolerant matching (pg_trgm:
--   contrib, shipped with PostgreSQL; trusted, so a database owner may create it).
-- * Two partial indexes over PLAYED rows (not a "w/" row, not a mashup part), the rows
--   transitions are made of (scrapers/db/explore/transitions.py): by track, where a track's plays
--   are found, and by (setlist, row), where the next or previous played row of a set is one
--   index probe. Both carry track_id so the probes read the index alone.
-- * Two small partial indexes over the rows played WITH another (co-plays).
-- * A GIN index on setlists.djs: a DJ's sets without reading every setlist; and setlists by the
--   site's tracklist id alone (the unique index leads with the source).
-- Transitions themselves are computed at query time from these indexes: no table to keep in step
-- with refreshes, merges and their rollback (docs/design.md, "Reading the catalogue").
-- Run with: psql -v ON_ERROR_STOP=1 -f migrations/011_explore_indexes.sql
BEGIN;

SET LOCAL lock_timeout = '30s';

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX IF NOT EXISTS idx_track_lookup_search
    ON track_lookup USING gin ((raw_artist || ' ' || raw_title) gin_trgm_ops);
CREATE INDEX IF NOT EXISTS idx_track_lookup_words
    ON track_lookup USING gin (to_tsvector('simple', raw_artist || ' ' || raw_title));

CREATE INDEX IF NOT EXISTS idx_setlist_tracks_played_by_track
    ON setlist_tracks (track_id) INCLUDE (setlist_id, row_index)
    WHERE NOT played_with_previous AND mashup_parent_row IS NULL;

CREATE INDEX IF NOT EXISTS idx_setlist_tracks_played_in_order
    ON setlist_tracks (setlist_id, row_index) INCLUDE (track_id)
    WHERE NOT played_with_previous AND mashup_parent_row IS NULL;

-- Rows played WITH another ("w/" rows, mashup parts; a few percent of all rows): a track's
-- co-plays, and whether a played row has any, are probes of these small indexes.
CREATE INDEX IF NOT EXISTS idx_setlist_tracks_attached_by_track
    ON setlist_tracks (track_id) INCLUDE (setlist_id, row_index, mashup_parent_row)
    WHERE played_with_previous OR mashup_parent_row IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_setlist_tracks_attached_in_order
    ON setlist_tracks (setlist_id, row_index)
    WHERE played_with_previous OR mashup_parent_row IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_setlists_djs ON setlists USING gin (djs);
CREATE INDEX IF NOT EXISTS idx_setlists_source_id ON setlists (source_id);

INSERT INTO schema_migrations (migration_name) VALUES ('011_explore_indexes')
ON CONFLICT (migration_name) DO NOTHING;

COMMIT;
