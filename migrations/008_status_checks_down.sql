-- Roll back 008_status_checks: drop the two checks and give migration 002's rows and its
-- restore_merged_tracks back the sentences 002 wrote in place of the codes.
-- Run with: psql -v ON_ERROR_STOP=1 -f migrations/008_status_checks_down.sql
BEGIN;

SET LOCAL lock_timeout = '30s';

ALTER TABLE rejected_items DROP CONSTRAINT IF EXISTS rejected_items_reason_check;
ALTER TABLE identifier_conflicts DROP CONSTRAINT IF EXISTS identifier_conflicts_resolution_check;

DO $rewrite$
DECLARE
    restore CONSTANT regprocedure := to_regprocedure('restore_merged_tracks(uuid[], boolean)');
BEGIN
    IF restore IS NOT NULL THEN
        EXECUTE replace(pg_get_functiondef(restore),
                        '''kept_on_other_track''',
                        '''restored track stored without it: another track holds it''');
    END IF;
END
$rewrite$;

UPDATE identifier_conflicts
SET resolution = 'merged duplicate carried another value; the keeper kept its own '
                 '(see deleted_duplicate_tracks)'
WHERE origin = '002_add_isrc_unique_constraints' AND resolution = 'kept_stored';
UPDATE identifier_conflicts
SET resolution = 'restored track stored without it: another track holds it'
WHERE origin = 'restore_duplicates' AND resolution = 'kept_on_other_track';

DELETE FROM schema_migrations WHERE migration_name = '008_status_checks';

COMMIT;
