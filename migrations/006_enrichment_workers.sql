-- 006_enrichment_workers: several enrichment workers at once, sharing each source's rate limit.
--
-- * tracks.enrichment_claimed_by / enrichment_claimed_until: a worker claims the tracks it is
--   about to look up (FOR UPDATE SKIP LOCKED, then a lease). Claims are disjoint, so no track is
--   looked up by two workers; a worker killed with kill -9 leaves claims that expire with their
--   lease, after which any worker may claim the tracks again.
-- * enrichment_rate_limits: one row per source holding the next free request slot. Every worker
--   reserves its slots with one atomic upsert, so adding workers never raises the request rate
--   (used when REDIS_URL is not set; with Redis the same state lives in Redis).
--
-- Adding nullable columns without a default does not rewrite the table.
-- Run with: psql -v ON_ERROR_STOP=1 -f migrations/006_enrichment_workers.sql
BEGIN;

SET LOCAL lock_timeout = '30s';

ALTER TABLE tracks
    ADD COLUMN IF NOT EXISTS enrichment_claimed_by text,
    ADD COLUMN IF NOT EXISTS enrichment_claimed_until timestamptz;

CREATE TABLE IF NOT EXISTS enrichment_rate_limits (
    source     text PRIMARY KEY,
    next_slot  timestamptz NOT NULL,
    held_until timestamptz NOT NULL DEFAULT '-infinity'
);

INSERT INTO schema_migrations (migration_name) VALUES ('006_enrichment_workers')
ON CONFLICT (migration_name) DO NOTHING;

COMMIT;
