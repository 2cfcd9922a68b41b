-- Roll back 006_enrichment_workers: claims and rate-limit slots are transient state, so dropping
-- them loses nothing; stop every enrichment worker first.
BEGIN;

SET LOCAL lock_timeout = '30s';

DROP TABLE IF EXISTS enrichment_rate_limits;
ALTER TABLE tracks
    DROP COLUMN IF EXISTS enrichment_claimed_by,
    DROP COLUMN IF EXISTS enrichment_claimed_until;

DELETE FROM schema_migrations WHERE migration_name = '006_enrichment_workers';

COMMIT;
