-- 009_import_row_digests: which import rows are already in the catalogue, so that importing the
-- same rows again writes nothing and costs little more than reading the file (issue 12).
--
-- digest: the importer's digest of a source row as read (scrapers.importers.driver.row_digest).
-- track_id: the track the row was stored as. Written by the batch writer in the same
--   transaction as the row itself, so a batch rolled back leaves no digest behind.
--
-- A cache, not a relationship: there is no foreign key on purpose. A row counts as known only
-- while its track still exists (the importer's check joins tracks), so a track deleted, or
-- merged away by 002_add_isrc_unique_constraints, makes its rows unknown again and the next
-- import applies them through the merge rule; the stale digest is then pointed at the new track.
-- Dropping the table, or any of its rows, loses nothing but speed.
-- Run with: psql -v ON_ERROR_STOP=1 -f migrations/009_import_row_digests.sql
BEGIN;

SET LOCAL lock_timeout = '30s';

CREATE TABLE IF NOT EXISTS import_row_digests (
    digest    bytea PRIMARY KEY,
    track_id  uuid NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO schema_migrations (migration_name) VALUES ('009_import_row_digests')
ON CONFLICT (migration_name) DO NOTHING;

COMMIT;
