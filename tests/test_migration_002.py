"""Migration 002: the testing plan's cases, and what the earlier implementation got wrong."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

import psycopg2
import psycopg2.extras
import pytest
from psycopg2 import sql

from scrapers.db.server import migrations
from scrapers.db.server.connection import connect
from scrapers.identity import normalize_isrc
from tests.conftest import THIS_DATABASE

MIGRATION = "002_add_isrc_unique_constraints"
REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIST = "10000000-0000-0000-0000-000000000001"
SETLIST = "20000000-0000-0000-0000-000000000001"


def track_id(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


def execute(url: str, statement: str, params: Iterable | None = None) -> list[tuple]:
    with closing(connect(url, autocommit=True)) as conn, conn.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def run_script(script: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A script of scripts/ as a user runs it, against ``url``."""
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": url},
        check=False,
        timeout=120,
    )


def migrate_002(url: str) -> list[str]:
    notices: list[str] = []
    migrations.upgrade(url, target=MIGRATION, on_notice=notices.append)
    return notices


def insert_tracks(url: str, rows: list[tuple]) -> None:
    """Rows of (n, title, isrc, spotify_id[, bpm]): ids are deterministic."""
    execute(
        url,
        "INSERT INTO tracks (id, title, normalized_title, isrc, spotify_id, bpm) "
        "SELECT (v->>0)::uuid, v->>1, lower(v->>1), v->>2, v->>3, (v->>4)::numeric "
        "FROM jsonb_array_elements(%s::jsonb) v",
        (
            psycopg2.extras.Json(
                [[track_id(row[0]), *row[1:4], row[4] if len(row) > 4 else None] for row in rows]
            ),
        ),
    )


def link(url: str, n: int, *, row_index: int, role: str = "primary") -> None:
    """Give track n an artist credit and a setlist position."""
    execute(
        url,
        "INSERT INTO artists (id, name, normalized_name) VALUES (%s, 'X', 'x') "
        "ON CONFLICT DO NOTHING; "
        "INSERT INTO setlists (id, source, source_id) VALUES (%s, 'test', '1') "
        "ON CONFLICT DO NOTHING; "
        "INSERT INTO track_artists (track_id, artist_id, role) VALUES (%s, %s, %s) "
        "ON CONFLICT DO NOTHING; "
        "INSERT INTO setlist_tracks (setlist_id, row_index, track_id) VALUES (%s, %s, %s)",
        (ARTIST, SETLIST, track_id(n), ARTIST, role, SETLIST, row_index, track_id(n)),
    )


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every table of the public schema, every row, in a stable order."""
    with closing(connect(url, autocommit=True)) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = sorted(name for (name,) in cursor.fetchall())
        contents = {}
        for table in tables:
            cursor.execute(
                sql.SQL("SELECT t::text FROM {} t ORDER BY 1").format(sql.Identifier(table))
            )
            contents[table] = cursor.fetchall()
        return contents


def index_definitions(url: str) -> list[str]:
    rows = execute(
        url,
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'tracks' "
        "ORDER BY indexname",
    )
    return [row[0] for row in rows]


@pytest.fixture
def before_002(make_database) -> str:
    return make_database("001_initial_schema")


# --- The plan's test cases --------------------------------------------------------------


def test_case_1_clean_database(before_002: str) -> None:
    insert_tracks(before_002, [(1, "One", "USRC10000001", "sp1"), (2, "Two", None, None)])
    notices = migrate_002(before_002)
    assert "Found 0 duplicate ISRC groups" in " ".join(notices)
    assert execute(before_002, "SELECT count(*) FROM deleted_duplicate_tracks") == [(0,)]
    assert execute(before_002, "SELECT count(*) FROM tracks") == [(2,)]
    assert any(
        "idx_tracks_isrc_unique" in d and "UNIQUE" in d for d in index_definitions(before_002)
    )


def test_case_2_isrc_duplicates_keep_the_most_complete(before_002: str) -> None:
    insert_tracks(
        before_002,
        [
            (1, "Test Track", "USRC12345678", "spotify_123"),
            (2, "Test Track (Duplicate)", "USRC12345678", None),
        ],
    )
    link(before_002, 2, row_index=0)
    notices = " ".join(migrate_002(before_002))
    assert "Found 1 duplicate ISRC groups" in notices
    assert execute(before_002, "SELECT id::text FROM tracks WHERE isrc = 'USRC12345678'") == [
        (track_id(1),)
    ]
    audit = execute(
        before_002,
        "SELECT original_id::text, merged_into_id::text, duplicate_type, "
        "original_data->'track'->>'title' FROM deleted_duplicate_tracks "
        "WHERE identifier = 'USRC12345678'",
    )
    assert audit == [(track_id(2), track_id(1), "ISRC", "Test Track (Duplicate)")]
    # The duplicate's relationships now belong to the keeper.
    assert execute(before_002, "SELECT track_id::text FROM setlist_tracks") == [(track_id(1),)]
    assert execute(before_002, "SELECT track_id::text FROM track_artists") == [(track_id(1),)]


def test_case_3_spotify_duplicates(before_002: str) -> None:
    insert_tracks(
        before_002,
        [(1, "Track A", None, "spotify_duplicate"), (2, "Track A Copy", None, "spotify_duplicate")],
    )
    notices = " ".join(migrate_002(before_002))
    assert "Found 1 duplicate Spotify ID groups" in notices
    assert execute(
        before_002, "SELECT count(*) FROM tracks WHERE spotify_id = 'spotify_duplicate'"
    ) == [(1,)]
    with pytest.raises(psycopg2.errors.UniqueViolation):
        insert_tracks(before_002, [(3, "Again", None, "spotify_duplicate")])


def test_case_4_mixed_identifiers(before_002: str) -> None:
    insert_tracks(
        before_002,
        [
            (1, "Track With ISRC", "USRC11111111", None),
            (2, "Track With Spotify", None, "spotify_abc"),
            (3, "Track With Neither", None, None),
        ],
    )
    migrate_002(before_002)
    assert execute(before_002, "SELECT count(*) FROM tracks") == [(3,)]
    insert_tracks(before_002, [(4, "Also Neither", None, None)])  # NULLs stay allowed
    with pytest.raises(psycopg2.errors.UniqueViolation):
        insert_tracks(before_002, [(5, "Same ISRC", "USRC11111111", None)])


def test_case_5_second_run_skips_and_changes_nothing(before_002: str) -> None:
    insert_tracks(before_002, [(1, "A", "USRC12345678", None), (2, "B", "USRC12345678", None)])
    path = migrations.MIGRATIONS_DIR / f"{MIGRATION}.sql"
    with closing(connect(before_002, autocommit=True)) as conn:
        migrations.run_sql_file(conn, path)
        after_first = snapshot(before_002)
        notices: list[str] = []
        migrations.run_sql_file(conn, path, notices.append)
    assert notices == [f"NOTICE:  Migration {MIGRATION} already applied. Skipping."]
    assert snapshot(before_002) == after_first
    assert execute(
        before_002, "SELECT count(*) FROM schema_migrations WHERE migration_name = %s", (MIGRATION,)
    ) == [(1,)]


def test_plan_upsert_sql_works_after_002(db_url: str) -> None:
    upsert = (
        "INSERT INTO tracks (title, normalized_title, isrc, bpm) "
        "VALUES (%s, %s, 'USTEST123456', %s) "
        "ON CONFLICT (isrc) WHERE isrc IS NOT NULL DO UPDATE SET title = EXCLUDED.title, "
        "bpm = EXCLUDED.bpm, updated_at = CURRENT_TIMESTAMP RETURNING id, title, bpm"
    )
    first = execute(db_url, upsert, ("Test Track", "test track", 120))
    second = execute(db_url, upsert, ("Test Track Updated", "test track updated", 128))
    assert first[0][0] == second[0][0]
    assert execute(db_url, "SELECT count(*), max(bpm) FROM tracks WHERE isrc = 'USTEST123456'") == [
        (1, 128)
    ]


# --- Beyond the plan ----------------------------------------------------------------------


def test_overlapping_groups_merge_into_one_track_with_both_identifiers(before_002: str) -> None:
    # A shares an ISRC with B, B shares a Spotify ID with C: one group.
    insert_tracks(
        before_002,
        [
            (1, "A", "GBAAA2400001", None),
            (2, "B", "gb-aaa-24-00001", "SPOT_S"),
            (3, "C", None, "SPOT_S"),
        ],
    )
    for n in (1, 2, 3):
        link(before_002, n, row_index=n)
    migrate_002(before_002)
    remaining = execute(before_002, "SELECT id::text, isrc, spotify_id FROM tracks")
    assert remaining == [(track_id(2), "GBAAA2400001", "SPOT_S")]
    assert execute(before_002, "SELECT count(*) FROM deleted_duplicate_tracks") == [(2,)]
    positions = execute(
        before_002, "SELECT row_index, track_id::text FROM setlist_tracks ORDER BY 1"
    )
    assert positions == [(1, track_id(2)), (2, track_id(2)), (3, track_id(2))]


def test_keeper_gains_identifiers_and_metadata_and_records_conflicts(before_002: str) -> None:
    insert_tracks(
        before_002,
        [(1, "Full", "GBAAA2400002", "SPOT_1", 124), (2, "Sparse", "GBAAA2400003", "SPOT_1")],
    )
    execute(
        before_002,
        "UPDATE tracks SET key = '8A', metadata = '{\"source\": \"b\"}' WHERE id = %s",
        (track_id(2),),
    )
    migrate_002(before_002)
    keeper = execute(before_002, "SELECT id::text, isrc, bpm, key, metadata FROM tracks")
    assert keeper == [(track_id(1), "GBAAA2400002", 124, "8A", {"source": "b"})]
    # The second ISRC could not live on the keeper: it is recorded, not dropped.
    conflicts = execute(
        before_002,
        "SELECT identifier_type, track_id::text, stored_value, incoming_value "
        "FROM identifier_conflicts",
    )
    assert conflicts == [("isrc", track_id(1), "GBAAA2400002", "GBAAA2400003")]


def test_relationship_counts_survive_a_merge(before_002: str) -> None:
    insert_tracks(
        before_002,
        [(n, f"T{n}", f"GBAAA24{n % 4:05d}", None) for n in range(1, 13)],
    )
    for n in range(1, 13):
        link(before_002, n, row_index=n, role="primary" if n <= 6 else "featured")
    positions = execute(before_002, "SELECT count(*) FROM setlist_tracks")
    migrate_002(before_002)
    assert execute(before_002, "SELECT count(*) FROM tracks") == [(4,)]
    assert execute(before_002, "SELECT count(*) FROM setlist_tracks") == positions
    assert execute(
        before_002,
        "SELECT count(*) FROM setlist_tracks s LEFT JOIN tracks t ON t.id = s.track_id "
        "WHERE t.id IS NULL",
    ) == [(0,)]
    # Each keeper holds one credit per role it or its duplicates had; the extras are audited.
    credits = execute(before_002, "SELECT count(*) FROM track_artists")[0][0]
    removed = execute(
        before_002,
        "SELECT count(*) FROM deleted_duplicate_tracks, "
        "jsonb_array_elements(original_data->'references') e WHERE (e->>'removed')::boolean",
    )[0][0]
    assert credits == 8 and credits + removed == 12


def test_table_added_later_is_repointed_and_restored(before_002: str) -> None:
    execute(
        before_002,
        "CREATE TABLE playlist_entries (id serial PRIMARY KEY, "
        "track_id uuid NOT NULL REFERENCES tracks (id)); "
        # No key at all, two foreign keys, and rows that are identical once re-pointed.
        "CREATE TABLE transitions (from_track uuid REFERENCES tracks (id), "
        "to_track uuid REFERENCES tracks (id), note text)",
    )
    insert_tracks(
        before_002,
        [(1, "A", "GBAAA2400009", None), (2, "B", "GBAAA2400009", None), (3, "C", None, None)],
    )
    execute(
        before_002,
        "INSERT INTO playlist_entries (track_id) VALUES (%(a)s), (%(b)s); "
        "INSERT INTO transitions VALUES (%(a)s, %(c)s, 'x'), (%(b)s, %(c)s, 'x'), "
        "(%(b)s, %(b)s, NULL), (%(c)s, %(a)s, NULL)",
        {"a": track_id(1), "b": track_id(2), "c": track_id(3)},
    )
    before = snapshot(before_002)
    migrate_002(before_002)
    assert execute(before_002, "SELECT count(DISTINCT track_id) FROM playlist_entries") == [(1,)]
    assert execute(
        before_002,
        "SELECT count(*) FROM transitions WHERE %s IN (from_track, to_track)",
        (track_id(2),),
    ) == [(0,)]
    migrations.downgrade(before_002, MIGRATION)
    assert snapshot(before_002) == before


def test_failure_midway_leaves_everything_as_it_was(before_002: str) -> None:
    insert_tracks(before_002, [(1, "A", "us-rc1-23-45678", None), (2, "B", "USRC12345678", None)])
    link(before_002, 2, row_index=0)
    # Deleting a duplicate fails: by then ISRCs were normalised and references re-pointed.
    execute(
        before_002,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN RAISE EXCEPTION 'injected failure'; END$$; "
        "CREATE TRIGGER refuse_delete BEFORE DELETE ON tracks "
        "FOR EACH ROW EXECUTE FUNCTION refuse()",
    )
    before = snapshot(before_002)
    indexes = index_definitions(before_002)
    with pytest.raises(migrations.MigrationError, match="injected failure"):
        migrate_002(before_002)
    assert snapshot(before_002) == before
    assert index_definitions(before_002) == indexes
    assert execute(before_002, "SELECT to_regclass('deleted_duplicate_tracks')") == [(None,)]


def test_writers_and_readers_wait_while_the_migration_runs(before_002: str) -> None:
    insert_tracks(before_002, [(1, "A", "USRC12345678", None), (2, "B", "USRC12345678", None)])
    # Slow the merge down at its delete step, long after the locks were taken.
    execute(
        before_002,
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN PERFORM pg_sleep(3); RETURN OLD; END$$; "
        "CREATE TRIGGER slow_delete BEFORE DELETE ON tracks FOR EACH ROW EXECUTE FUNCTION slow()",
    )
    migration = threading.Thread(target=migrate_002, args=(before_002,))
    migration.start()
    try:
        with closing(connect(before_002)) as writer, writer.cursor() as cursor:
            wait_for_lock(cursor, "AccessExclusiveLock", granted=True)
            cursor.execute("SET lock_timeout = '500ms'")
            with pytest.raises(psycopg2.errors.LockNotAvailable):
                cursor.execute(
                    "INSERT INTO tracks (title, normalized_title, isrc) "
                    "VALUES ('C', 'c', 'USRC12345678')"
                )
            writer.rollback()
            # The lock is taken first, so reads wait too (its DROP INDEX needs it at the end).
            cursor.execute("SET lock_timeout = '500ms'")
            with pytest.raises(psycopg2.errors.LockNotAvailable):
                cursor.execute("SELECT count(*) FROM tracks")
            writer.rollback()
    finally:
        migration.join()
    assert execute(before_002, "SELECT count(*) FROM tracks") == [(1,)]


def wait_for_lock(cursor: psycopg2.extensions.cursor, mode: str, *, granted: bool) -> None:
    """Poll until some session holds (or waits for) ``mode`` on tracks."""
    for _ in range(200):
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = 'tracks'::regclass "
            f"AND mode = %s AND granted = %s AND {THIS_DATABASE}",
            (mode, granted),
        )
        found = cursor.fetchone()[0]
        cursor.connection.rollback()
        if found:
            return
        time.sleep(0.05)
    raise AssertionError(f"no session {'holds' if granted else 'waits for'} {mode} on tracks")


def test_reader_that_then_writes_does_not_deadlock_the_migration(before_002: str) -> None:
    """The importer's pattern: read tracks, then write them, in one transaction.

    With a weaker lock first and ACCESS EXCLUSIVE only at DROP INDEX, this deadlocked: the
    writer's INSERT waited for the migration's EXCLUSIVE lock while the migration waited for
    the writer's ACCESS SHARE.
    """
    insert_tracks(before_002, [(1, "A", "USRC12345678", None), (2, "B", "USRC12345678", None)])
    notices: list[str] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            migrations.upgrade(
                before_002, target=MIGRATION, on_notice=notices.append, lock_timeout=30
            )
        except BaseException as error:
            failures.append(error)

    with closing(connect(before_002)) as writer, writer.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tracks")  # ACCESS SHARE, held until COMMIT
        writer_pid = writer.get_backend_pid()
        migration = threading.Thread(target=run)
        migration.start()
        try:
            with closing(connect(before_002, autocommit=True)) as probe, probe.cursor() as look:
                wait_for_lock(look, "AccessExclusiveLock", granted=False)
            time.sleep(migrations.LOCK_WAIT_POLL * 1.5)  # long enough to be reported live
            cursor.execute("SET lock_timeout = '10s'")
            cursor.execute(
                "INSERT INTO tracks (title, normalized_title, isrc) "
                "VALUES ('C', 'c', 'USRC12345678')"
            )
            writer.commit()
        finally:
            migration.join()
    assert failures == []
    # The migration ran after the writer's transaction: its row was merged too.
    assert execute(before_002, "SELECT count(*) FROM tracks") == [(1,)]
    live = [notice for notice in notices if "the migration waits for locks held by" in notice]
    assert live and f"pid {writer_pid} " in live[0]
    [waiting] = [notice for notice in notices if "ACCESS EXCLUSIVE on tracks" in notice]
    assert (
        "waiting for writers…" in waiting and f"pid {writer_pid} (holds AccessShareLock" in waiting
    )


def test_writes_in_a_loop_while_002_is_applied(before_002: str) -> None:
    insert_tracks(before_002, [(1, "A", "USRC12345678", None), (2, "B", "USRC12345678", None)])
    stop = threading.Event()
    committed: list[float] = []
    errors: list[BaseException] = []

    def write() -> None:
        with closing(connect(before_002)) as writer, writer.cursor() as cursor:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    cursor.execute("SELECT count(*) FROM tracks")
                    cursor.execute(
                        "INSERT INTO tracks (title, normalized_title) VALUES (%s, %s)",
                        (f"W{n}", f"w{n}"),
                    )
                    time.sleep(0.02)
                    writer.commit()
                    committed.append(time.monotonic())
                except psycopg2.Error as error:
                    errors.append(error)
                    writer.rollback()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        while len(committed) < 5:
            time.sleep(0.01)
        started = time.monotonic()
        migrate_002(before_002)
        finished = time.monotonic()
        while not [when for when in committed if when > finished]:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert execute(
        before_002, "SELECT count(*) FROM schema_migrations WHERE migration_name = %s", (MIGRATION,)
    ) == [(1,)]
    assert execute(before_002, "SELECT count(*) FROM tracks WHERE isrc IS NOT NULL") == [(1,)]
    assert started < finished


def test_lock_not_granted_in_time_stops_with_a_clear_message(before_002: str) -> None:
    insert_tracks(before_002, [(1, "A", "USRC12345678", None), (2, "B", "USRC12345678", None)])
    before = snapshot(before_002)
    with closing(connect(before_002)) as reader, reader.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tracks")  # idle in transaction, holding the table
        reader_pid = reader.get_backend_pid()
        done = run_script(
            REPO_ROOT / "scripts" / "migrate.py", before_002, "--lock-timeout", "1.5", "up"
        )
        reader.rollback()
    assert done.returncode == 1, done.stderr
    assert "waiting for writers…" in done.stdout
    assert "could not get the lock on tracks within 1.5 s: other sessions: " in done.stderr
    assert f"pid {reader_pid} (holds AccessShareLock; application " in done.stderr
    assert "idle in transaction" in done.stderr
    assert snapshot(before_002) == before  # rolled back: nothing merged, nothing recorded


def test_up_down_up_gives_back_the_same_rows(before_002: str) -> None:
    insert_tracks(
        before_002,
        [
            (1, "A", "gb aaa 24 00001", None, 120),
            (2, "B", "GB-AAA-24-00001", "SPOT_S", None),
            (3, "C", None, "SPOT_S"),
            (4, "D", "TC1234567890", None),
            (5, "E", "   ", "SPOT_T"),
            (6, "F", "GBAAA2400005", "SPOT_T"),
            (7, "G", "GBAAA2400006", "SPOT_U"),
            (8, "H", "GBAAA2400007", "SPOT_U"),
        ],
    )
    for n in range(1, 9):
        link(before_002, n, row_index=n, role="featured" if n == 3 else "primary")
    execute(
        before_002,
        "INSERT INTO track_lookup (raw_artist, raw_title, track_id) "
        "VALUES ('x', 'a', %s), ('x', 'c', %s); "
        "INSERT INTO identifier_conflicts (identifier_type, track_id, other_track_id, "
        "incoming_value, origin, resolution) VALUES ('isrc', %s, %s, 'v', 'test', 'kept')",
        (track_id(1), track_id(3), track_id(3), track_id(2)),
    )
    original = snapshot(before_002)
    original_indexes = index_definitions(before_002)
    migrate_002(before_002)
    merged = snapshot(before_002)
    first_merge = merged_state(before_002)
    assert len(merged["tracks"]) == 4

    migrations.downgrade(before_002, MIGRATION)
    assert snapshot(before_002) == original
    assert index_definitions(before_002) == original_indexes

    migrate_002(before_002)
    again = snapshot(before_002)
    # The same merge again; only timestamps and serial ids of this second run differ.
    for table in ("setlist_tracks", "track_artists", "track_lookup"):
        assert again[table] == merged[table]
    assert merged_state(before_002) == first_merge


def merged_state(url: str) -> list[list[tuple]]:
    return [
        execute(url, "SELECT id, isrc, spotify_id, bpm, metadata FROM tracks ORDER BY id"),
        execute(
            url,
            "SELECT original_id, merged_into_id, duplicate_type, identifier, "
            "original_data->'track' FROM deleted_duplicate_tracks ORDER BY original_id",
        ),
        execute(
            url,
            "SELECT identifier_type, track_id, stored_value, incoming_value FROM "
            "identifier_conflicts ORDER BY 1, 2, 4",
        ),
    ]


@pytest.mark.parametrize(
    "spelling",
    [
        "USRC12345678",
        "usrc12345678",
        "us-rc1-23-45678",
        "US.RC1.23.45678",
        " US RC1 23 45678\t",
        "US\u00a0RC1\u200923\u300045678\n",
        "USRC1234567",
        "USRC123456789",
        "TC1234567890",
        "tc-123-45-67890",
        "1SRC12345678",
        "USRC1234567X",
        "ıSRC12345678",
        "ßRC112345678",
        "U\u00dfC12345678",
        "USRÇ12345678",
        "",
        " - . ",
        "US_RC12345678",
        "ﬁ0001234567",
    ],
)
def test_sql_normalisation_agrees_with_identity_module(before_002: str, spelling: str) -> None:
    insert_tracks(before_002, [(1, "T", spelling, None)])
    migrate_002(before_002)
    stored, invalid = execute(before_002, "SELECT isrc, metadata->'invalid'->>'isrc' FROM tracks")[
        0
    ]
    assert stored == normalize_isrc(spelling)
    expected_invalid = (
        spelling if normalize_isrc(spelling) is None and spelling.strip(" -.") else None
    )
    assert invalid == expected_invalid


def psql_file(url: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_migration_file_runs_under_psql_on_error_stop(make_database) -> None:
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    url = make_database("")
    files = [m.up for m in migrations.discover()]
    files += [m.down for m in reversed(migrations.discover()) if m.down]
    for path in files:
        result = psql_file(url, path)
        assert result.returncode == 0, f"{path.name}: {result.stderr}"
        if path.stem == MIGRATION:
            again = psql_file(url, path)
            assert again.returncode == 0 and "already applied. Skipping." in again.stderr


def test_run_migration_script_applies_then_skips(before_002: str) -> None:
    insert_tracks(before_002, [(1, "A", "USRC12345678", None), (2, "B", "usrc12345678", None)])
    env = {"DATABASE_URL": before_002, "PATH": "/usr/bin:/bin", "PYTHON": sys.executable}
    command = [str(REPO_ROOT / "run_migration.sh"), MIGRATION]
    first = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert first.returncode == 0, first.stderr
    assert f"✓ Migration {MIGRATION} completed successfully" in first.stdout + first.stderr
    second = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert second.returncode == 0
    assert "already applied. Skipping." in second.stdout + second.stderr
    missing = subprocess.run(
        [str(REPO_ROOT / "run_migration.sh"), "999_nope"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert missing.returncode == 2 and "999_nope" in missing.stderr


def test_invalid_isrc_is_kept_where_the_writer_keeps_it_and_rolled_back(before_002: str) -> None:
    """metadata.invalid.isrc, as scrapers.db.write.records stores an invalid ISRC; other invalid
    values already there stay, and the rollback gives back exactly what was stored."""
    insert_tracks(before_002, [(1, "A", "TC1234567890", None), (2, "B", "bad", None)])
    execute(
        before_002,
        'UPDATE tracks SET metadata = \'{"invalid": {"bpm": "fast"}, "x": 1}\' WHERE id = %s',
        (track_id(1),),
    )
    original = snapshot(before_002)
    migrate_002(before_002)
    assert execute(before_002, "SELECT metadata FROM tracks ORDER BY id") == [
        ({"invalid": {"bpm": "fast", "isrc": "TC1234567890"}, "x": 1},),
        ({"invalid": {"isrc": "bad"}},),
    ]
    migrations.downgrade(before_002, MIGRATION)
    assert snapshot(before_002) == original
