-- Roll back 005_rejected_items_payload_bounds: drops the size and hash columns. Payloads cut to
-- their first 64 KiB stay cut; the location of each row still says where the whole input is.
BEGIN;

ALTER TABLE rejected_items
    DROP COLUMN IF EXISTS payload_bytes,
    DROP COLUMN IF EXISTS payload_sha256;

DELETE FROM schema_migrations WHERE migration_name = '005_rejected_items_payload_bounds';

COMMIT;
