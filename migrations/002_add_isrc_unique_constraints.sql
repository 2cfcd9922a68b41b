-- 002_add_isrc_unique_constraints: merge duplicate tracks, keep an audit trail, then make
-- tracks.isrc and tracks.spotify_id unique (partial unique indexes, NULLs allowed).
--
-- Run with: psql -v ON_ERROR_STOP=1 -f migrations/002_add_isrc_unique_constraints.sql
-- (or `python scripts/migrate.py up`, or `./run_migration.sh 002_add_isrc_unique_constraints`).
--
-- One transaction: it completes, or it changes nothing and is not recorded. A second run prints
-- "already applied. Skipping." and changes nothing. It takes the migration runner's advisory lock,
-- then, before it changes anything, every table lock it needs, strongest first and in a fixed
-- order: ACCESS EXCLUSIVE on tracks (its DROP INDEX needs that; taken late, after a weaker lock,
-- it deadlocked with a writer that had read tracks and then waited to write), then EXCLUSIVE on
-- each table referencing tracks, by name. Reads and writes of tracks, and writes of those tables,
-- wait until COMMIT, so no duplicate can slip in between the merge and the unique indexes. While
-- another session holds a lock it needs it says "waiting for writers…" with those sessions; if
-- the lock is not granted within the lock timeout it stops, changing nothing, with "could not get
-- the lock on … within N s: other sessions: …".
--
-- What it does, in order:
-- 1. ISRCs are normalised exactly as scrapers.identity.normalize_isrc does (drop whitespace,
--    hyphens and dots, upper-case ASCII letters; other letters fail the format). A value that is then empty becomes NULL. A value that fails
--    ^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$ or starts with TC (TuneCore) is not an ISRC: isrc becomes NULL
--    and the raw value is kept in metadata->'invalid'->'isrc' (where the writer keeps every
--    invalid value, scrapers.db.write.records). Every rewrite is recorded in
--    isrc_normalization_audit (the rollback puts the raw value back).
-- 2. Duplicates are connected components over the two identifiers (A shares an ISRC with B, B
--    shares a Spotify ID with C: one group), found set-based by propagating the smallest label
--    along shared ISRCs and Spotify IDs until nothing changes.
-- 3. Keeper rule: in each group the keeper is the most complete row (most non-NULL columns),
--    then the oldest (created_at), then the smallest id. The keeper takes its duplicates by the
--    writer's merge rule (scrapers/db/write/merge.py; tests/test_merge_rule.py checks they agree): the
--    keeper is the stored row, and the incoming record holds, per column, the best-ranked
--    duplicate's non-NULL value and, per metadata key, the best-ranked duplicate's value. So a
--    duplicate's descriptive values (bpm, duration_ms, key, label, release_date, genre) replace
--    the keeper's, identity columns are only filled where the keeper has none, metadata keys are
--    added, and an enrichment outcome replaces "pending". An identifier the
--    keeper cannot take (a second, different ISRC or Spotify ID in the group) is recorded in
--    identifier_conflicts (origin '002_add_isrc_unique_constraints'), not dropped.
-- 4. Every row that references a duplicate, through any foreign key to tracks(id) found in the
--    catalog at run time (so tables added by later migrations are covered), is re-pointed to
--    the keeper. A row whose re-pointing would collide with a unique index (the keeper already
--    has it) is removed instead. Both kinds are kept in the audit trail.
-- 5. Each deleted duplicate gets a deleted_duplicate_tracks row; original_data holds "track"
--    (the row), "references" (each referencing row as it was, the foreign-key values that
--    changed, and whether it was removed), "keeper_before" (the keeper's row before the merge)
--    and "keeper_changes" (the columns the merge changed). restore_merged_tracks(ids, unique)
--    undoes whole merge groups from it; the _down migration and scripts/restore_duplicates.py
--    use it.
-- 6. The non-unique idx_tracks_isrc / idx_tracks_spotify_id make way for idx_tracks_isrc_unique
--    and idx_tracks_spotify_id_unique (no other index: each one slows every write); then the row in
--    schema_migrations, last.
--
-- Settings (LOCAL: they end with the transaction): work_mem 256MB so the grouping and joins
-- over the whole table hash in memory; temp_buffers 512MB so the working set (temporary tables)
-- stays in memory; maintenance_work_mem 512MB so each index sorts in one pass; lock_timeout 60s
-- (or the session's migrations.lock_timeout, e.g. PGOPTIONS='-c migrations.lock_timeout=10s')
-- so a long-running writer makes the migration fail instead of queueing every other client
-- behind it. Every statement is set-based; the only loops run per round of label propagation,
-- per referencing table and per unique index, never per row.
BEGIN;
SET LOCAL work_mem = '256MB';
SET LOCAL maintenance_work_mem = '512MB';
SET LOCAL lock_timeout = '60s';
-- The whole migration is one DO statement: a server-wide statement_timeout would cut it short.
SET LOCAL statement_timeout = 0;

DO $migration$
DECLARE
    migration CONSTANT text := '002_add_isrc_unique_constraints';
    -- The columns the merge fills on keepers (every one but id, metadata and timestamps).
    track_columns text;
    fill_values text;
    referencing record;
    needed record;
    sessions text;
    unique_index record;
    statement text;
    changed bigint;
    changed_too bigint;
    rounds integer := 0;
BEGIN
    PERFORM set_config('lock_timeout', current_setting('migrations.lock_timeout', true), true)
    WHERE current_setting('migrations.lock_timeout', true) <> '';
    -- The same key as scrapers.db.server.migrations.ADVISORY_LOCK_KEY: psql runs queue behind runners.
    PERFORM pg_advisory_xact_lock(128034608999283);
    IF EXISTS (SELECT 1 FROM schema_migrations WHERE migration_name = migration) THEN
        RAISE NOTICE 'Migration % already applied. Skipping.', migration;
        RETURN;
    END IF;

    -- Every lock first (see the header). Writers touch tracks before the tables referencing it,
    -- so they queue behind the migration instead of deadlocking with it.
    FOR needed IN
        SELECT t.tbl, t.mode FROM (
            SELECT 'tracks'::regclass AS tbl, 'ACCESS EXCLUSIVE' AS mode, 0 AS rank
            UNION
            SELECT conrelid::regclass, 'EXCLUSIVE', 1 FROM pg_constraint
            WHERE contype = 'f' AND confrelid = 'tracks'::regclass
              AND conrelid <> 'tracks'::regclass
        ) t
        ORDER BY t.rank, t.tbl::text
    LOOP
        FOR attempt IN 1..2 LOOP
            BEGIN
                EXECUTE format('LOCK TABLE %s IN %s MODE%s', needed.tbl, needed.mode,
                               CASE WHEN attempt = 1 THEN ' NOWAIT' ELSE '' END);
                EXIT;
            EXCEPTION WHEN lock_not_available THEN
                SELECT coalesce(string_agg(format(
                           'pid %s (%s %s; application %L, user %s, %s, transaction open %s s)',
                           o.pid, CASE WHEN o.granted THEN 'holds' ELSE 'waits for' END, o.modes,
                           o.application_name, o.usename, o.state,
                           round(extract(epoch FROM clock_timestamp() - o.xact_start))),
                           '; ' ORDER BY o.pid), 'none left')
                INTO sessions
                FROM (SELECT a.pid, bool_and(l.granted) AS granted,
                             string_agg(DISTINCT l.mode, '+') AS modes, a.application_name,
                             a.usename, a.state, a.xact_start
                      FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                      WHERE l.relation = needed.tbl AND l.pid <> pg_backend_pid()
                      GROUP BY a.pid, a.application_name, a.usename, a.state, a.xact_start) o;
                IF attempt = 1 THEN
                    RAISE NOTICE 'waiting for writers… % on % (lock_timeout %); other sessions: %',
                        needed.mode, needed.tbl, current_setting('lock_timeout'), sessions;
                ELSE
                    RAISE EXCEPTION 'could not get the lock on % within % s: other sessions: %',
                        needed.tbl,
                        trim_scale(extract(epoch FROM current_setting('lock_timeout')::interval)),
                        sessions
                        USING HINT = 'Nothing was changed. Let those sessions finish (or end '
                                     'them), then run the migration again.',
                              ERRCODE = 'lock_not_available';
                END IF;
            END;
        END LOOP;
    END LOOP;

    -- The working set lives in temporary tables: give them room in memory. temp_buffers can
    -- only change before a session's first temporary table; if that is past, keep the default.
    BEGIN
        PERFORM set_config('temp_buffers', '512MB', true);
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE NOTICE 'temp_buffers stays at %: this session already used temporary tables',
            current_setting('temp_buffers');
    END;

    CREATE TABLE deleted_duplicate_tracks (
        id             bigserial PRIMARY KEY,
        original_id    uuid NOT NULL,
        merged_into_id uuid NOT NULL,
        duplicate_type text NOT NULL CHECK (duplicate_type IN ('ISRC', 'SPOTIFY_ID')),
        identifier     text NOT NULL,
        deleted_at     timestamptz NOT NULL DEFAULT now(),
        original_data  jsonb NOT NULL,
        restored_at    timestamptz
    );
    CREATE INDEX idx_deleted_duplicate_tracks_original ON deleted_duplicate_tracks (original_id);
    CREATE INDEX idx_deleted_duplicate_tracks_merged_into
        ON deleted_duplicate_tracks (merged_into_id);
    CREATE INDEX idx_deleted_duplicate_tracks_identifier ON deleted_duplicate_tracks (identifier);

    CREATE TABLE isrc_normalization_audit (
        track_id              uuid PRIMARY KEY,
        original_isrc         text NOT NULL,
        stored_isrc           text,
        -- metadata->'invalid' before it was overwritten (NULL: the key was absent).
        previous_invalid_isrc jsonb,
        action                text NOT NULL
            CHECK (action IN ('normalized', 'invalid_moved_to_metadata', 'empty_cleared')),
        changed_at            timestamptz NOT NULL DEFAULT now()
    );

    RAISE NOTICE '===========================================';
    RAISE NOTICE 'STEP 1: Analyzing existing duplicates';
    RAISE NOTICE '===========================================';

    -- The mirror of scrapers.identity.normalize_isrc: Python's \s (str.isspace), '-' and '.'
    -- removed; then ASCII upper-case (translate, so the result does not depend on the
    -- database's locale). Any other letter is left as it is and fails the format.
    INSERT INTO isrc_normalization_audit
        (track_id, original_isrc, stored_isrc, previous_invalid_isrc, action)
    SELECT id, isrc, valid, CASE WHEN valid IS NULL AND cleaned <> '' THEN invalid_key END,
           CASE WHEN cleaned = '' THEN 'empty_cleared'
                WHEN valid IS NULL THEN 'invalid_moved_to_metadata'
                ELSE 'normalized' END
    FROM (
        SELECT id, isrc, cleaned, metadata -> 'invalid' AS invalid_key,
               CASE WHEN cleaned ~ '^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$' AND left(cleaned, 2) <> 'TC'
                    THEN cleaned END AS valid
        FROM (
            SELECT id, isrc, metadata, translate(
                regexp_replace(isrc,
                    '[\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000.-]',
                    '', 'g'),
                'abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ') AS cleaned
            FROM tracks
            -- A canonical value normalises to itself: only the others need the full rewrite.
            WHERE isrc IS NOT NULL
              AND (isrc !~ '^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$' OR left(isrc, 2) = 'TC')
        ) spelled
    ) checked
    WHERE valid IS DISTINCT FROM isrc;

    UPDATE tracks t
    SET isrc = a.stored_isrc,
        metadata = CASE WHEN a.action = 'invalid_moved_to_metadata'
                        THEN t.metadata || jsonb_build_object('invalid',
                            CASE WHEN jsonb_typeof(t.metadata -> 'invalid') = 'object'
                                 THEN t.metadata -> 'invalid' ELSE '{}' END
                            || jsonb_build_object('isrc', a.original_isrc))
                        ELSE t.metadata END
    FROM isrc_normalization_audit a
    WHERE t.id = a.track_id;
    RAISE NOTICE 'Normalised % stored ISRC spellings (% invalid values moved to metadata.invalid.isrc)',
        (SELECT count(*) FROM isrc_normalization_audit WHERE action = 'normalized'),
        (SELECT count(*) FROM isrc_normalization_audit WHERE action = 'invalid_moved_to_metadata');

    CREATE TEMP TABLE dup_isrc ON COMMIT DROP AS
        SELECT isrc FROM tracks WHERE isrc IS NOT NULL GROUP BY isrc HAVING count(*) > 1;
    CREATE TEMP TABLE dup_spotify ON COMMIT DROP AS
        SELECT spotify_id FROM tracks WHERE spotify_id IS NOT NULL
        GROUP BY spotify_id HAVING count(*) > 1;
    -- Temporary tables get no autovacuum statistics: without ANALYZE the planner guesses.
    ANALYZE dup_isrc;
    ANALYZE dup_spotify;
    RAISE NOTICE 'Found % duplicate ISRC groups', (SELECT count(*) FROM dup_isrc);
    RAISE NOTICE 'Found % duplicate Spotify ID groups', (SELECT count(*) FROM dup_spotify);

    -- Connected components: every track sharing a duplicated identifier starts with its own
    -- label; each round gives every track the smallest label among tracks sharing its ISRC,
    -- then its Spotify ID, until a round changes nothing.
    CREATE TEMP TABLE dup_member ON COMMIT DROP AS
        SELECT id, isrc, spotify_id, row_number() OVER () AS label
        FROM tracks
        WHERE isrc IN (SELECT isrc FROM dup_isrc)
           OR spotify_id IN (SELECT spotify_id FROM dup_spotify);
    ANALYZE dup_member;
    LOOP
        rounds := rounds + 1;
        UPDATE dup_member m SET label = g.label
        FROM (SELECT isrc, min(label) AS label FROM dup_member WHERE isrc IS NOT NULL
              GROUP BY isrc) g
        WHERE m.isrc = g.isrc AND g.label < m.label;
        GET DIAGNOSTICS changed = ROW_COUNT;
        UPDATE dup_member m SET label = g.label
        FROM (SELECT spotify_id, min(label) AS label FROM dup_member
              WHERE spotify_id IS NOT NULL GROUP BY spotify_id) g
        WHERE m.spotify_id = g.spotify_id AND g.label < m.label;
        GET DIAGNOSTICS changed_too = ROW_COUNT;
        EXIT WHEN changed + changed_too = 0;
    END LOOP;

    -- Each member with its rank in its group: most non-NULL columns first, then the oldest,
    -- then the smallest id. Rank 1 is the keeper. The typed columns are kept for the merge.
    EXECUTE format(
        'CREATE TEMP TABLE dup_ranked ON COMMIT DROP AS'
        ' SELECT t.*, m.label AS merge_group, to_jsonb(t) AS track_row,'
        '        row_number() OVER (PARTITION BY m.label'
        '                           ORDER BY num_nonnulls(%s) DESC, t.created_at, t.id) AS merge_rank'
        ' FROM dup_member m JOIN tracks t ON t.id = m.id',
        (SELECT string_agg('t.' || quote_ident(attname), ', ' ORDER BY attnum)
         FROM pg_attribute
         WHERE attrelid = 'tracks'::regclass AND attnum > 0 AND NOT attisdropped));
    ANALYZE dup_ranked;
    CREATE TEMP TABLE merge_map ON COMMIT DROP AS
        SELECT d.id AS duplicate_id, k.id AS keeper_id, d.merge_group, d.track_row AS duplicate_row
        FROM dup_ranked d JOIN dup_ranked k ON k.merge_group = d.merge_group AND k.merge_rank = 1
        WHERE d.merge_rank > 1;
    ALTER TABLE merge_map ADD PRIMARY KEY (duplicate_id);
    ANALYZE merge_map;
    RAISE NOTICE 'Found % connected duplicate groups (% rounds): % tracks will merge into % keepers',
        (SELECT count(DISTINCT label) FROM dup_member), rounds,
        (SELECT count(*) FROM merge_map), (SELECT count(DISTINCT keeper_id) FROM merge_map);

    RAISE NOTICE '===========================================';
    RAISE NOTICE 'STEP 2: Merging metadata into keeper records';
    RAISE NOTICE '===========================================';

    -- The incoming record: for every column, the value of the best-ranked duplicate that has
    -- one. Arrays go through text: array_agg of arrays would stack them. Then the merge rule
    -- (scrapers/db/write/merge.py): descriptive columns take the incoming value, an enrichment
    -- outcome replaces the keeper's status, every other column is only filled where empty.
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum),
           string_agg(CASE
                WHEN a.attname IN ('bpm', 'duration_ms', 'key', 'label', 'release_date', 'genre')
                    THEN format('coalesce(f.%1$I, t.%1$I)', a.attname)
                WHEN a.attname = 'enrichment_status'
                    THEN format('CASE WHEN f.%1$I IN (''enriched'', ''not_found'', ''failed'')'
                                ' THEN f.%1$I ELSE t.%1$I END', a.attname)
                ELSE format('coalesce(t.%1$I, f.%1$I)', a.attname) END,
                      ', ' ORDER BY a.attnum),
           string_agg(CASE WHEN t.typcategory = 'A'
                THEN format('((array_agg(%1$I::text ORDER BY merge_rank) FILTER (WHERE %1$I IS NOT NULL))[1])::%2$s',
                            a.attname, format_type(a.atttypid, a.atttypmod))
                ELSE format('(array_agg(%1$I ORDER BY merge_rank) FILTER (WHERE %1$I IS NOT NULL))[1]',
                            a.attname) END || ' AS ' || quote_ident(a.attname),
                      ', ' ORDER BY a.attnum)
    INTO track_columns, fill_values, statement
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = 'tracks'::regclass AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attgenerated = ''
      AND a.attname NOT IN ('id', 'metadata', 'created_at', 'updated_at');
    EXECUTE format(
        'CREATE TEMP TABLE keeper_fill ON COMMIT DROP AS'
        ' SELECT merge_group, %s FROM dup_ranked WHERE merge_rank > 1 GROUP BY merge_group',
        statement);
    -- Incoming metadata: every key of every duplicate, the best-ranked one's value winning.
    CREATE TEMP TABLE keeper_metadata ON COMMIT DROP AS
        SELECT merge_group, jsonb_object_agg(key, value) AS merged
        FROM (SELECT DISTINCT ON (r.merge_group, f.key) r.merge_group, f.key, f.value
              FROM dup_ranked r, jsonb_each(r.metadata) f
              WHERE jsonb_typeof(r.metadata) = 'object' AND r.merge_rank > 1
              ORDER BY r.merge_group, f.key, r.merge_rank) firsts
        GROUP BY merge_group;
    EXECUTE format(
        'UPDATE tracks t SET (%1$s, metadata, updated_at) = (SELECT %2$s, t.metadata || coalesce(mm.merged, ''{}''), now())'
        ' FROM keeper_fill f JOIN dup_ranked k ON k.merge_group = f.merge_group AND k.merge_rank = 1'
        ' LEFT JOIN keeper_metadata mm ON mm.merge_group = f.merge_group'
        ' WHERE t.id = k.id',
        track_columns, fill_values);
    GET DIAGNOSTICS changed = ROW_COUNT;

    -- The keeper before the merge, and the columns the merge changed (to undo it later).
    CREATE TEMP TABLE keeper_merge ON COMMIT DROP AS
        SELECT k.id AS keeper_id, k.track_row AS keeper_before,
               coalesce((SELECT jsonb_object_agg(f.key, f.value) FROM jsonb_each(to_jsonb(t)) f
                         WHERE k.track_row -> f.key IS DISTINCT FROM f.value), '{}'::jsonb)
                   AS keeper_changes
        FROM dup_ranked k JOIN tracks t ON t.id = k.id
        WHERE k.merge_rank = 1;
    ALTER TABLE keeper_merge ADD PRIMARY KEY (keeper_id);
    ANALYZE keeper_merge;
    RAISE NOTICE 'Merged identifiers and metadata into % keeper tracks', changed;

    RAISE NOTICE '===========================================';
    RAISE NOTICE 'STEP 3: Re-pointing references to merged tracks';
    RAISE NOTICE '===========================================';

    -- One row per referencing row: its image before and after re-pointing, and whether it can
    -- stay (false: re-pointed it would collide with a row the keeper already has).
    CREATE TEMP TABLE ref_rows (
        tbl           regclass NOT NULL,
        table_name    text NOT NULL,
        row_ctid      tid NOT NULL,
        duplicate_ids uuid[] NOT NULL,
        before        jsonb NOT NULL,
        -- The re-pointed foreign-key columns: the row after is before || changes.
        changes       jsonb NOT NULL,
        keep          boolean NOT NULL DEFAULT true
    ) ON COMMIT DROP;

    FOR referencing IN
        SELECT c.conrelid::regclass AS tbl,
               array_agg(DISTINCT a.attname::text) AS fk_columns
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        WHERE c.contype = 'f' AND c.confrelid = 'tracks'::regclass
        GROUP BY c.conrelid
        ORDER BY c.conrelid::regclass::text
    LOOP
        SELECT format(
                   'INSERT INTO ref_rows (tbl, table_name, row_ctid, duplicate_ids, before, changes)'
                   ' SELECT %1$L::regclass, %4$L, x.ctid,'
                   ' ARRAY(SELECT duplicate_id FROM merge_map WHERE duplicate_id IN (%3$s)),'
                   ' j.row, jsonb_build_object(%2$s)'
                   ' FROM %1$s x CROSS JOIN LATERAL (SELECT to_jsonb(x) AS row) j WHERE EXISTS'
                   ' (SELECT 1 FROM merge_map m WHERE m.duplicate_id IN (%3$s))',
                   referencing.tbl,
                   string_agg(format(
                       '%1$L, coalesce((SELECT keeper_id FROM merge_map WHERE duplicate_id = x.%1$I), x.%1$I)',
                       col), ', '),
                   string_agg(format('x.%I', col), ', '),
                   (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
                    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = referencing.tbl))
        INTO statement
        FROM unnest(referencing.fk_columns) col;
        EXECUTE statement;
        ANALYZE ref_rows;

        -- Unique indexes holding a re-pointed column: drop the re-pointed rows that would
        -- collide with a row that stays put, then all but one of those colliding among
        -- themselves.
        FOR unique_index IN
            SELECT i.indexrelid,
                   array_agg(a.attname::text ORDER BY k.ord) AS columns
            FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = referencing.tbl AND i.indisunique AND k.ord <= i.indnkeyatts
            GROUP BY i.indexrelid
            HAVING array_agg(a.attname::text) && referencing.fk_columns
        LOOP
            SELECT format(
                       'UPDATE ref_rows r SET keep = false FROM ('
                       ' SELECT DISTINCT r2.row_ctid FROM ref_rows r2'
                       ' CROSS JOIN LATERAL jsonb_populate_record(NULL::%1$s, r2.before || r2.changes) a'
                       ' JOIN %1$s s ON %2$s'
                       ' WHERE r2.tbl = %1$L::regclass AND r2.keep AND NOT EXISTS'
                       ' (SELECT 1 FROM merge_map m WHERE m.duplicate_id IN (%3$s))) hit'
                       ' WHERE r.tbl = %1$L::regclass AND r.row_ctid = hit.row_ctid',
                       referencing.tbl,
                       string_agg(format('s.%1$I = a.%1$I', col), ' AND '),
                       (SELECT string_agg(format('s.%I', fk), ', ')
                        FROM unnest(referencing.fk_columns) fk))
            INTO statement
            FROM unnest(unique_index.columns) col;
            EXECUTE statement;
            SELECT format(
                       'UPDATE ref_rows r SET keep = false FROM (SELECT row_ctid, row_number()'
                       ' OVER (PARTITION BY %2$s ORDER BY row_ctid) AS n FROM ref_rows'
                       ' WHERE tbl = %1$L::regclass AND keep AND %3$s) ranked'
                       ' WHERE r.tbl = %1$L::regclass AND r.row_ctid = ranked.row_ctid AND ranked.n > 1',
                       referencing.tbl,
                       string_agg(format('(before || changes) -> %L', col), ', '),
                       string_agg(format('(before || changes) -> %L <> ''null''::jsonb', col), ' AND '))
            INTO statement
            FROM unnest(unique_index.columns) col;
            EXECUTE statement;
        END LOOP;

        EXECUTE format(
            'DELETE FROM %1$s x WHERE x.ctid = ANY(ARRAY('
            ' SELECT row_ctid FROM ref_rows WHERE tbl = %1$L::regclass AND NOT keep))',
            referencing.tbl);
        GET DIAGNOSTICS changed_too = ROW_COUNT;
        -- Only the captured rows, fetched by ctid, all foreign-key columns in one statement
        -- (a second statement would no longer find the rows the first one moved).
        SELECT format(
                   'UPDATE %1$s x SET %2$s WHERE x.ctid = ANY(ARRAY('
                   ' SELECT row_ctid FROM ref_rows WHERE tbl = %1$L::regclass AND keep))',
                   referencing.tbl,
                   string_agg(format(
                       '%1$I = coalesce((SELECT keeper_id FROM merge_map WHERE duplicate_id = x.%1$I), x.%1$I)',
                       col), ', '))
        INTO statement
        FROM unnest(referencing.fk_columns) col;
        EXECUTE statement;
        GET DIAGNOSTICS changed = ROW_COUNT;
        RAISE NOTICE '%: re-pointed % references, removed % that the keeper already had',
            referencing.tbl, changed, changed_too;
    END LOOP;

    RAISE NOTICE '===========================================';
    RAISE NOTICE 'STEP 4: Recording and deleting duplicate records';
    RAISE NOTICE '===========================================';

    INSERT INTO deleted_duplicate_tracks
        (original_id, merged_into_id, duplicate_type, identifier, original_data)
    SELECT m.duplicate_id, m.keeper_id,
           CASE WHEN shared.isrc IS NOT NULL THEN 'ISRC' ELSE 'SPOTIFY_ID' END,
           coalesce(shared.isrc, m.duplicate_row ->> 'spotify_id'),
           jsonb_build_object(
               'track', m.duplicate_row,
               'references', coalesce(refs.entries, '[]'::jsonb),
               'keeper_before', k.keeper_before,
               'keeper_changes', k.keeper_changes)
    FROM merge_map m
    JOIN keeper_merge k ON k.keeper_id = m.keeper_id
    LEFT JOIN dup_isrc shared ON shared.isrc = m.duplicate_row ->> 'isrc'
    LEFT JOIN (
        SELECT d.duplicate_id,
               jsonb_agg(jsonb_build_object(
                   'table', r.table_name, 'before', r.before, 'changes', r.changes,
                   'removed', NOT r.keep)) AS entries
        FROM ref_rows r CROSS JOIN LATERAL unnest(r.duplicate_ids) d(duplicate_id)
        GROUP BY d.duplicate_id
    ) refs ON refs.duplicate_id = m.duplicate_id;

    -- Identifiers the keeper could not take: recorded, never silently dropped.
    INSERT INTO identifier_conflicts
        (identifier_type, track_id, stored_value, incoming_value, origin, resolution)
    SELECT DISTINCT kind, m.keeper_id, (k.keeper_before || k.keeper_changes) ->> kind,
           m.duplicate_row ->> kind,
           migration,
           'merged duplicate carried another value; the keeper kept its own '
           '(see deleted_duplicate_tracks)'
    FROM merge_map m
    JOIN keeper_merge k ON k.keeper_id = m.keeper_id
    CROSS JOIN (VALUES ('isrc'), ('spotify_id')) kinds(kind)
    WHERE m.duplicate_row ->> kind IS NOT NULL
      AND m.duplicate_row ->> kind <> (k.keeper_before || k.keeper_changes) ->> kind;
    GET DIAGNOSTICS changed = ROW_COUNT;
    IF changed > 0 THEN
        RAISE NOTICE 'Recorded % identifiers the keepers could not take in identifier_conflicts',
            changed;
    END IF;

    DELETE FROM tracks t USING merge_map m WHERE t.id = m.duplicate_id;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RAISE NOTICE 'Deleted % duplicate track records (audit trail: deleted_duplicate_tracks)',
        changed;

    RAISE NOTICE '===========================================';
    RAISE NOTICE 'STEP 5: Adding unique constraints';
    RAISE NOTICE '===========================================';

    DROP INDEX IF EXISTS idx_tracks_isrc;
    DROP INDEX IF EXISTS idx_tracks_spotify_id;
    BEGIN
        CREATE UNIQUE INDEX idx_tracks_isrc_unique ON tracks (isrc) WHERE isrc IS NOT NULL;
        CREATE UNIQUE INDEX idx_tracks_spotify_id_unique
            ON tracks (spotify_id) WHERE spotify_id IS NOT NULL;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION 'uniqueness still does not hold after merging duplicates: %', SQLERRM
            USING HINT = 'Nothing was changed. Report this with the duplicate query of the README.';
    END;
    RAISE NOTICE 'Created idx_tracks_isrc_unique and idx_tracks_spotify_id_unique';

    -- No further lookup indexes: the unique indexes serve the ISRC and Spotify tiers, and
    -- idx_tracks_title_key (001) the title tier. Every extra index on tracks slows each write.
    ANALYZE tracks;

    CREATE FUNCTION restore_merged_tracks(duplicate_ids uuid[],
                                          keep_identifiers_unique boolean DEFAULT true)
    RETURNS integer LANGUAGE plpgsql AS $restore$
    -- Undo whole merge groups (every unrestored duplicate merged into the same keeper as one of
    -- duplicate_ids). The keeper gets back each column the merge changed, unless it changed
    -- again since; the duplicates come back with their ids; every reference returns to the
    -- duplicate it pointed at. With keep_identifiers_unique, an identifier another track now
    -- holds stays there, the restored track is stored without it, and identifier_conflicts
    -- records it (origin 'restore_duplicates').
    DECLARE
        all_columns text;
        referencing record;
        key_match text;
        statement text;
        restored integer;
    BEGIN
        IF to_regclass('pg_temp.restoring') IS NOT NULL THEN
            DROP TABLE pg_temp.restoring, pg_temp.restoring_ids, pg_temp.restoring_refs;
        END IF;
        CREATE TEMP TABLE restoring AS
            SELECT d.id AS audit_id, d.original_id, d.merged_into_id, d.original_data,
                   d.original_data -> 'track' AS track_row,
                   NULL::text AS lost_isrc, NULL::text AS lost_spotify_id
            FROM deleted_duplicate_tracks d
            WHERE d.restored_at IS NULL
              AND d.merged_into_id IN (SELECT merged_into_id FROM deleted_duplicate_tracks
                                       WHERE original_id IN (SELECT unnest(duplicate_ids)));
        GET DIAGNOSTICS restored = ROW_COUNT;
        CREATE TEMP TABLE restoring_ids AS SELECT original_id::text AS id FROM restoring;
        ALTER TABLE restoring_ids ADD PRIMARY KEY (id);
        ANALYZE restoring;
        ANALYZE restoring_ids;

        SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO all_columns
        FROM pg_attribute
        WHERE attrelid = 'tracks'::regclass AND attnum > 0 AND NOT attisdropped
          AND attgenerated = '' AND attname <> 'id';

        -- Keepers: back to keeper_before, column by column, where the value is still the one
        -- the merge wrote.
        EXECUTE format(
            'UPDATE tracks t SET (%1$s) = (SELECT %1$s FROM jsonb_populate_record(NULL::tracks, p.new_row))'
            ' FROM (SELECT k.id, to_jsonb(k) || coalesce((SELECT jsonb_object_agg(b.key, b.value)'
            '   FROM jsonb_each(g.before) b'
            '   WHERE g.after -> b.key IS DISTINCT FROM b.value'
            '     AND to_jsonb(k) -> b.key IS NOT DISTINCT FROM g.after -> b.key), ''{}''::jsonb) AS new_row'
            '   FROM (SELECT DISTINCT ON (merged_into_id) merged_into_id,'
            '           original_data -> ''keeper_before'' AS before,'
            '           (original_data -> ''keeper_before'') || (original_data -> ''keeper_changes'') AS after'
            '         FROM restoring) g'
            '   JOIN tracks k ON k.id = g.merged_into_id) p'
            ' WHERE t.id = p.id', all_columns);
        DELETE FROM identifier_conflicts
        WHERE origin = '002_add_isrc_unique_constraints'
          AND track_id IN (SELECT merged_into_id FROM restoring);

        IF keep_identifiers_unique THEN
            UPDATE restoring r
            SET lost_isrc = r.track_row ->> 'isrc', track_row = r.track_row || '{"isrc": null}'
            WHERE r.track_row ->> 'isrc' IS NOT NULL
              AND (EXISTS (SELECT 1 FROM tracks t WHERE t.isrc = r.track_row ->> 'isrc')
                   OR EXISTS (SELECT 1 FROM restoring o WHERE o.original_id < r.original_id
                              AND o.track_row ->> 'isrc' = r.track_row ->> 'isrc'));
            UPDATE restoring r
            SET lost_spotify_id = r.track_row ->> 'spotify_id',
                track_row = r.track_row || '{"spotify_id": null}'
            WHERE r.track_row ->> 'spotify_id' IS NOT NULL
              AND (EXISTS (SELECT 1 FROM tracks t
                           WHERE t.spotify_id = r.track_row ->> 'spotify_id')
                   OR EXISTS (SELECT 1 FROM restoring o WHERE o.original_id < r.original_id
                              AND o.track_row ->> 'spotify_id' = r.track_row ->> 'spotify_id'));
        END IF;

        EXECUTE format(
            'INSERT INTO tracks (id, %1$s) SELECT r.original_id, %2$s FROM restoring r,'
            ' jsonb_populate_record(NULL::tracks, r.track_row) p', all_columns,
            (SELECT string_agg('p.' || quote_ident(attname), ', ' ORDER BY attnum)
             FROM pg_attribute
             WHERE attrelid = 'tracks'::regclass AND attnum > 0 AND NOT attisdropped
               AND attgenerated = '' AND attname <> 'id'));

        INSERT INTO identifier_conflicts
            (identifier_type, track_id, other_track_id, incoming_value, origin, resolution)
        SELECT kind, original_id,
               CASE kind WHEN 'isrc' THEN (SELECT id FROM tracks WHERE isrc = lost)
                         ELSE (SELECT id FROM tracks WHERE spotify_id = lost) END,
               lost, 'restore_duplicates',
               'restored track stored without it: another track holds it'
        FROM (SELECT r.original_id, v.kind, v.lost FROM restoring r
              CROSS JOIN LATERAL (VALUES ('isrc', r.lost_isrc),
                                         ('spotify_id', r.lost_spotify_id)) v(kind, lost)
              WHERE r.lost_isrc IS NOT NULL OR r.lost_spotify_id IS NOT NULL) lost_values
        WHERE lost IS NOT NULL;

        -- References: rows that were re-pointed go back; rows that were removed come back.
        -- original: the row before the merge; as_is: the row the merge left; restored: as_is
        -- with each foreign key back on its old track if that track exists again (a row that
        -- also pointed at a track of another, still merged group keeps that keeper).
        CREATE TEMP TABLE restoring_refs AS
            SELECT DISTINCT e ->> 'table' AS tbl, e -> 'before' AS original,
                   (e -> 'before') || (e -> 'changes') AS as_is,
                   NULL::jsonb AS restored, (e ->> 'removed')::boolean AS removed
            FROM restoring r, jsonb_array_elements(r.original_data -> 'references') e;
        ANALYZE restoring_refs;
        FOR referencing IN
            SELECT rr.tbl, rr.tbl::regclass AS rel,
                   (SELECT array_agg(DISTINCT a.attname::text) FROM pg_constraint c
                    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
                    WHERE c.contype = 'f' AND c.confrelid = 'tracks'::regclass
                      AND c.conrelid = rr.tbl::regclass) AS fk_columns
            FROM (SELECT DISTINCT tbl FROM restoring_refs) rr
        LOOP
            UPDATE restoring_refs rr
            SET restored = rr.as_is || coalesce((
                SELECT jsonb_object_agg(b.key, b.value) FROM jsonb_each(rr.original) b
                WHERE b.key = ANY(referencing.fk_columns)
                  AND EXISTS (SELECT 1 FROM restoring_ids WHERE id = b.value #>> '{}')),
                '{}'::jsonb)
            WHERE rr.tbl = referencing.tbl;

            EXECUTE format(
                'INSERT INTO %1$s SELECT (jsonb_populate_record(NULL::%1$s, rr.restored)).*'
                ' FROM restoring_refs rr WHERE rr.tbl = %2$L AND rr.removed',
                referencing.rel, referencing.tbl);

            -- Find each re-pointed row by its primary key (every column when it has none). A
            -- key column that is a foreign key may hold any of the three images' values (an
            -- earlier restore of another group may have moved it already); only the foreign
            -- keys this restore brings back are written.
            SELECT string_agg(CASE
                       WHEN a.attname = ANY(referencing.fk_columns) THEN format(
                           'x.%1$I IN ((w.as_is).%1$I, (w.restored).%1$I, (w.original).%1$I)',
                           a.attname)
                       WHEN a.attnotnull THEN format('x.%1$I = (w.as_is).%1$I', a.attname)
                       ELSE format('x.%1$I IS NOT DISTINCT FROM (w.as_is).%1$I', a.attname)
                   END, ' AND ')
            INTO key_match
            FROM pg_attribute a
            WHERE a.attrelid = referencing.rel AND a.attnum > 0 AND NOT a.attisdropped
              AND (EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = referencing.rel
                           AND contype = 'p' AND a.attnum = ANY(conkey))
                   OR NOT EXISTS (SELECT 1 FROM pg_constraint
                                  WHERE conrelid = referencing.rel AND contype = 'p'));
            -- Entries with identical images (possible without a key) each take one row: the
            -- n-th entry of an image pairs with the n-th matching row.
            SELECT format(
                       'WITH w AS MATERIALIZED (SELECT rr.as_is AS image,'
                       ' jsonb_populate_record(NULL::%1$s, rr.original) AS original,'
                       ' jsonb_populate_record(NULL::%1$s, rr.as_is) AS as_is,'
                       ' jsonb_populate_record(NULL::%1$s, rr.restored) AS restored,'
                       ' row_number() OVER (PARTITION BY rr.as_is'
                       '                    ORDER BY rr.original::text, rr.restored::text) AS n'
                       ' FROM restoring_refs rr WHERE rr.tbl = %2$L AND NOT rr.removed),'
                       ' pairs AS (SELECT x.ctid AS row_ctid, w.n,'
                       ' dense_rank() OVER (PARTITION BY w.image ORDER BY x.ctid) AS row_n, %4$s'
                       ' FROM %1$s x JOIN w ON %5$s)'
                       ' UPDATE %1$s x SET (%3$s) = ROW(%6$s) FROM pairs p'
                       ' WHERE x.ctid = p.row_ctid AND p.n = p.row_n',
                       referencing.rel, referencing.tbl,
                       string_agg(quote_ident(col), ', ' ORDER BY position),
                       string_agg(format(
                           'CASE WHEN (w.restored).%1$I IS DISTINCT FROM (w.as_is).%1$I'
                           ' THEN (w.restored).%1$I ELSE x.%1$I END AS value_%2$s', col, position),
                           ', ' ORDER BY position),
                       key_match,
                       string_agg(format('p.value_%s', position), ', ' ORDER BY position))
            INTO statement
            FROM unnest(referencing.fk_columns) WITH ORDINALITY fk(col, position);
            EXECUTE statement;
        END LOOP;

        UPDATE deleted_duplicate_tracks d SET restored_at = now()
        FROM restoring r WHERE d.id = r.audit_id;
        DROP TABLE pg_temp.restoring, pg_temp.restoring_ids, pg_temp.restoring_refs;
        RETURN restored;
    END
    $restore$;

    RAISE NOTICE '===========================================';
    RAISE NOTICE 'FINAL VERIFICATION';
    RAISE NOTICE '===========================================';
    RAISE NOTICE 'Finished in % s', round(extract(epoch FROM clock_timestamp() - now()), 1);
    RAISE NOTICE 'Tracks: %, with ISRC: %, with Spotify ID: %',
        (SELECT count(*) FROM tracks), (SELECT count(isrc) FROM tracks),
        (SELECT count(spotify_id) FROM tracks);

    INSERT INTO schema_migrations (migration_name) VALUES (migration);
    RAISE NOTICE '✓ Migration % completed successfully', migration;
END
$migration$;

COMMIT;
