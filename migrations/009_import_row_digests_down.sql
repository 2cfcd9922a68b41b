-- Roll back 009_import_row_digests: the digests only let a re-import skip rows already stored;
-- without them every row is applied again, and nothing of the catalogue is lost.
-- Run with: psql -v ON_ERROR_STOP=1 -f migrations/009_import_row_digests_down.sql
BEGIN;

SET LOCAL lock_timeout = '30s';

DROP TABLE IF EXISTS import_row_digests;

DELETE FROM schema_migrations WHERE migration_name = '009_import_row_digests';

COMMIT;
