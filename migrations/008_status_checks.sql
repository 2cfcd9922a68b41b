-- 008_status_checks: every status and code the project stores is one of a fixed set, checked by
-- the database as well as by the code (scrapers.statuses; tests/test_statuses.py compares both).
--
-- 001 already checks tracks.enrichment_status, track_artists.role and
-- identifier_conflicts.identifier_type. This adds the two columns that took free text:
-- * identifier_conflicts.resolution: 'kept_stored' or 'kept_on_other_track'. Migration 002 wrote
--   a sentence instead, and its restore_merged_tracks (run by scripts/restore_duplicates.py)
--   another; each describes one of the two outcomes, so old rows get the code (their origin
--   still says which step wrote them) and the function is re-created writing the code.
-- * rejected_items.reason: "code: detail", the code one of scrapers.statuses.RejectionCode.
-- A row that still fails a check (written by hand, or by a version of the project that used other
-- codes) is kept as it is: that constraint then stays NOT VALID, which checks every new or
-- changed row but not the old ones, and a NOTICE says so. Otherwise the constraint is validated.
-- Run with: psql -v ON_ERROR_STOP=1 -f migrations/008_status_checks.sql
BEGIN;

SET LOCAL lock_timeout = '30s';
-- scripts/migrate.py --lock-timeout, when given, replaces that.
DO $timeout$
BEGIN
    PERFORM set_config('lock_timeout', current_setting('migrations.lock_timeout', true), true)
    WHERE current_setting('migrations.lock_timeout', true) <> '';
END
$timeout$;

UPDATE identifier_conflicts SET resolution = 'kept_stored'
WHERE origin = '002_add_isrc_unique_constraints'
  AND resolution = 'merged duplicate carried another value; the keeper kept its own '
                   '(see deleted_duplicate_tracks)';
UPDATE identifier_conflicts SET resolution = 'kept_on_other_track'
WHERE origin = 'restore_duplicates'
  AND resolution = 'restored track stored without it: another track holds it';

-- The same function with the code in place of the sentence (absent before 002 or after its
-- rollback; unchanged if it already writes the code).
DO $rewrite$
DECLARE
    restore CONSTANT regprocedure := to_regprocedure('restore_merged_tracks(uuid[], boolean)');
BEGIN
    IF restore IS NOT NULL THEN
        EXECUTE replace(pg_get_functiondef(restore),
                        '''restored track stored without it: another track holds it''',
                        '''kept_on_other_track''');
    END IF;
END
$rewrite$;

-- DROP … IF EXISTS would say "does not exist, skipping" on every first run.
SET LOCAL client_min_messages = warning;
ALTER TABLE identifier_conflicts
    DROP CONSTRAINT IF EXISTS identifier_conflicts_resolution_check,
    ADD CONSTRAINT identifier_conflicts_resolution_check
        CHECK (resolution IN ('kept_stored', 'kept_on_other_track')) NOT VALID;

ALTER TABLE rejected_items
    DROP CONSTRAINT IF EXISTS rejected_items_reason_check,
    ADD CONSTRAINT rejected_items_reason_check
        CHECK (split_part(reason, ':', 1) IN (
            'wrong_type', 'wrong_value', 'field_too_long', 'nul_byte', 'missing_title',
            'missing_artist', 'missing_source_id', 'missing_row_index', 'unknown_track',
            'database_error', 'unreadable')) NOT VALID;
SET LOCAL client_min_messages = notice;

DO $validate$
DECLARE
    checked record;
BEGIN
    FOR checked IN
        SELECT conrelid::regclass AS relation, conname, pg_get_constraintdef(oid) AS definition
        FROM pg_constraint
        WHERE conrelid IN ('identifier_conflicts'::regclass, 'rejected_items'::regclass)
          AND conname IN ('identifier_conflicts_resolution_check', 'rejected_items_reason_check')
    LOOP
        BEGIN
            EXECUTE format('ALTER TABLE %s VALIDATE CONSTRAINT %I', checked.relation,
                           checked.conname);
        EXCEPTION WHEN check_violation THEN
            RAISE NOTICE '% holds rows that fail %: they are kept, and the check holds for new '
                         'rows only (NOT VALID). List them with SELECT * FROM % WHERE NOT (%)',
                checked.relation, checked.conname, checked.relation,
                substring(checked.definition FROM '^CHECK \((.*)\) NOT VALID$');
        END;
    END LOOP;
END
$validate$;

INSERT INTO schema_migrations (migration_name) VALUES ('008_status_checks')
ON CONFLICT (migration_name) DO NOTHING;

COMMIT;
