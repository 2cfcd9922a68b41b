-- Roll back 004_enrichment_cache: the cache holds only copies of public answers, so dropping it
-- loses nothing that a later lookup cannot fetch again.
BEGIN;

DROP TABLE IF EXISTS enrichment_cache;

DELETE FROM schema_migrations WHERE migration_name = '004_enrichment_cache';

COMMIT;
