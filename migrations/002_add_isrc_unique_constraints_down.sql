-- Undo 002_add_isrc_unique_constraints, in one transaction:
-- 1. drop the unique and lookup indexes, restore the non-unique idx_tracks_isrc and
--    idx_tracks_spotify_id;
-- 2. restore every merge group not already restored (restore_merged_tracks): duplicates come
--    back with their ids and identifiers, keepers get back the columns the merge changed (unless
--    changed again since), references return to the duplicates, removed ones are re-inserted,
--    and the identifier_conflicts rows 002 wrote are deleted;
-- 3. put back the raw ISRC spellings 002 normalised (unless the value changed since);
-- 4. drop the audit tables and the restore function, and the schema_migrations row.
-- Groups restored earlier with scripts/restore_duplicates.py stay as that script left them.
-- Run with: psql -v ON_ERROR_STOP=1 -f migrations/002_add_isrc_unique_constraints_down.sql
BEGIN;
SET LOCAL work_mem = '256MB';
SET LOCAL lock_timeout = '60s';

DO $rollback$
DECLARE
    migration CONSTANT text := '002_add_isrc_unique_constraints';
    restored integer;
    reverted integer;
BEGIN
    PERFORM pg_advisory_xact_lock(128034608999283);
    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE migration_name = migration) THEN
        RAISE NOTICE 'Migration % is not applied. Nothing to roll back.', migration;
        RETURN;
    END IF;
    LOCK TABLE tracks IN ACCESS EXCLUSIVE MODE;

    DROP INDEX IF EXISTS idx_tracks_isrc_unique;
    DROP INDEX IF EXISTS idx_tracks_spotify_id_unique;
    CREATE INDEX IF NOT EXISTS idx_tracks_isrc ON tracks (isrc);
    CREATE INDEX IF NOT EXISTS idx_tracks_spotify_id ON tracks (spotify_id);
    RAISE NOTICE 'Dropped the unique indexes; restored idx_tracks_isrc and idx_tracks_spotify_id';

    SELECT restore_merged_tracks(array_agg(original_id), false) INTO restored
    FROM deleted_duplicate_tracks WHERE restored_at IS NULL;
    RAISE NOTICE 'Restored % merged tracks from deleted_duplicate_tracks', coalesce(restored, 0);

    UPDATE tracks t
    SET isrc = a.original_isrc,
        metadata = CASE
            WHEN a.action <> 'invalid_moved_to_metadata' THEN t.metadata
            -- Only the key 002 wrote: invalid values the writer recorded since then stay.
            WHEN a.previous_invalid_isrc IS NULL
                 AND (t.metadata #- '{invalid,isrc}') -> 'invalid' = '{}'
                THEN t.metadata - 'invalid'
            WHEN a.previous_invalid_isrc IS NULL THEN t.metadata #- '{invalid,isrc}'
            WHEN jsonb_typeof(a.previous_invalid_isrc) <> 'object'
                THEN t.metadata || jsonb_build_object('invalid', a.previous_invalid_isrc)
            WHEN a.previous_invalid_isrc ? 'isrc'
                THEN jsonb_set(t.metadata, '{invalid,isrc}', a.previous_invalid_isrc -> 'isrc')
            ELSE t.metadata #- '{invalid,isrc}' END
    FROM isrc_normalization_audit a
    WHERE t.id = a.track_id AND t.isrc IS NOT DISTINCT FROM a.stored_isrc;
    GET DIAGNOSTICS reverted = ROW_COUNT;
    RAISE NOTICE 'Put back % original ISRC spellings', reverted;

    DROP FUNCTION restore_merged_tracks(uuid[], boolean);
    DROP TABLE deleted_duplicate_tracks;
    DROP TABLE isrc_normalization_audit;
    DELETE FROM schema_migrations WHERE migration_name = migration;
    RAISE NOTICE '✓ Migration % rolled back', migration;
END
$rollback$;

COMMIT;
