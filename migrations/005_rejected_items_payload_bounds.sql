-- 005_rejected_items_payload_bounds: a refused input is kept as a bounded prefix, its size and
-- its hash, instead of whole.
--
-- One broken line can be hundreds of megabytes; rejected_items.payload now holds only its first
-- 64 KiB. payload_bytes and payload_sha256 describe the whole input (for an unreadable line, its
-- bytes in the file without the line end; for a refused item, its JSON text), and location
-- (file:line, or the page URL and row) says where the rest is.
--
-- Rows stored before this migration get the size and hash of what they hold, and are cut to
-- their first 65,536 characters (the importer had already cut unreadable rows there).
--
-- Run with: psql -v ON_ERROR_STOP=1 -f migrations/005_rejected_items_payload_bounds.sql
BEGIN;

ALTER TABLE rejected_items
    ADD COLUMN IF NOT EXISTS payload_bytes bigint CHECK (payload_bytes >= 0),
    ADD COLUMN IF NOT EXISTS payload_sha256 text CHECK (payload_sha256 ~ '^[0-9a-f]{64}$');

UPDATE rejected_items
SET payload_bytes = octet_length(payload),
    payload_sha256 = encode(sha256(convert_to(payload, 'UTF8')), 'hex'),
    payload = left(payload, 65536)
WHERE payload_sha256 IS NULL;

INSERT INTO schema_migrations (migration_name) VALUES ('005_rejected_items_payload_bounds')
ON CONFLICT (migration_name) DO NOTHING;

COMMIT;
