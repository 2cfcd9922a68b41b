-- 004_enrichment_cache: the enrichment sources' response cache.
--
-- One row per (source, request): the answer's HTTP status and JSON body, when it was fetched
-- and when it goes stale (a TTL per source, shorter for "not found" answers). A track or query
-- seen before is answered from here without a request; force_refresh bypasses it.
-- Secrets never reach this table: request keys are path + query, never headers.
--
-- Run with: psql -v ON_ERROR_STOP=1 -f migrations/004_enrichment_cache.sql
BEGIN;

CREATE TABLE IF NOT EXISTS enrichment_cache (
    source      text NOT NULL,
    request_key text NOT NULL,
    status      smallint NOT NULL,
    body        jsonb NOT NULL,
    fetched_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (source, request_key)
);
-- Purging stale answers scans by expiry.
CREATE INDEX IF NOT EXISTS idx_enrichment_cache_expires ON enrichment_cache (expires_at);

INSERT INTO schema_migrations (migration_name) VALUES ('004_enrichment_cache')
ON CONFLICT (migration_name) DO NOTHING;

COMMIT;
