"""``scripts/import_tracks.py --bulk``: the same catalogue as the normal path, all or nothing,
and everyone else waits while it runs."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading
import time
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest
from psycopg2 import sql

from scrapers.db.server.connection import connect
from scrapers.db.write.bulk import CHILD_TABLES
from scrapers.db.write.locks import LOCK_BUCKETS, LOCK_CLASS
from scrapers.db.write.writer import BatchWriter, DatabaseUnavailable
from tests.conftest import THIS_DATABASE
from tests.test_import import (
    FIXTURES,
    SCRIPT,
    assert_no_duplicate_tracks,
    generate,
    query,
    run_import,
    snapshot,
    start_import,
    summary_value,
)


def foreign_keys(url: str) -> list[tuple]:
    return query(
        url,
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated"
        " FROM pg_constraint WHERE contype = 'f' ORDER BY 1, 2",
    )


# The sessions holding the catalogue's tables as a bulk load does, until it commits.
TABLES_HELD = (
    "SELECT pid FROM pg_locks WHERE relation = 'tracks'::regclass AND granted"
    f" AND mode = 'AccessExclusiveLock' AND {THIS_DATABASE}"
)


def bulk_backend(url: str, deadline: float) -> int:
    """The backend of the bulk load that holds the catalogue's tables, once it does."""
    while time.monotonic() < deadline:
        rows = query(url, TABLES_HELD)
        if rows:
            return rows[0][0]
        time.sleep(0.02)
    raise AssertionError("the bulk load never took the tables")


def test_bulk_import_stores_the_same_catalogue_as_the_normal_path(
    make_database, db_url: str, tmp_path: Path
) -> None:
    files = [*sorted(FIXTURES.iterdir()), generate(tmp_path / "catalogue.csv", 3000)]
    keys = foreign_keys(db_url)
    normal_url = make_database()
    run_import(normal_url, *files, "--batch-size", "700")
    result = run_import(db_url, *files, "--bulk", "--batch-size", "700")
    assert snapshot(db_url) == snapshot(normal_url)
    assert foreign_keys(db_url) == keys
    assert {table for table, *_ in keys} >= set(CHILD_TABLES)
    assert_no_duplicate_tracks(db_url)

    # Again: everything is known, nothing is written (no row gets a new version).
    versions = query(db_url, "SELECT id, xmin::text FROM tracks ORDER BY id")
    again = run_import(db_url, *files, "--bulk", "--batch-size", "700")
    assert summary_value(again.stdout, "inserted / updated").startswith("0 new tracks")
    assert query(db_url, "SELECT id, xmin::text FROM tracks ORDER BY id") == versions
    assert snapshot(db_url) == snapshot(normal_url)
    assert "rolled back" not in result.stdout


def test_killed_bulk_import_leaves_nothing_and_every_key(db_url: str, tmp_path: Path) -> None:
    catalogue = generate(tmp_path / "big.csv", 20_000)
    keys = foreign_keys(db_url)
    process = start_import(db_url, catalogue, "--bulk", "--batch-size", "500")
    backend = bulk_backend(db_url, time.monotonic() + 60)
    # Let it load a few batches: the keys are dropped and rows are in, uncommitted.
    with closing(connect(db_url, autocommit=True)) as watcher, watcher.cursor() as cursor:
        deadline = time.monotonic() + 60
        while True:
            cursor.execute(
                "SELECT state, xact_start < now() - interval '1 second' FROM pg_stat_activity"
                " WHERE pid = %s",
                (backend,),
            )
            row = cursor.fetchone()
            if row is not None and row[1]:
                break
            assert process.poll() is None, "the import finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    process.kill()
    process.communicate(timeout=60)
    # The server rolls the transaction back when the connection drops.
    deadline = time.monotonic() + 30
    while query(db_url, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (backend,)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert foreign_keys(db_url) == keys
    for table in ("tracks", "artists", *CHILD_TABLES):
        assert query(db_url, f"SELECT count(*) FROM {table}") == [(0,)], table


def test_an_error_at_commit_rolls_the_whole_bulk_load_back(db_url: str, tmp_path: Path) -> None:
    """A violation found at COMMIT (here a deferred constraint trigger refusing one title)
    leaves nothing of the file, and the foreign keys as they were."""
    catalogue = tmp_path / "poison.jsonl"
    catalogue.write_text(
        "".join(f'{{"artist": "A{n}", "title": "T{n}"}}\n' for n in range(50))
        + '{"artist": "B", "title": "Poison"}\n'
    )
    keys = foreign_keys(db_url)
    query(
        db_url,
        """
        CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.title = 'Poison' THEN RAISE check_violation USING MESSAGE = 'poison'; END IF;
            RETURN NULL;
        END $$;
        CREATE CONSTRAINT TRIGGER refuse_poison AFTER INSERT ON tracks
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_poison();
        SELECT 1
        """,
    )
    result = run_import(db_url, catalogue, "--bulk", "--batch-size", "10", expect=2)
    assert "poison" in result.stderr
    assert query(db_url, "SELECT count(*) FROM tracks") == [(0,)]
    assert foreign_keys(db_url) == keys


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_bad_item_in_a_bulk_load_is_rejected_alone(db_url: str, tmp_path: Path, fmt: str) -> None:
    """Bisection works inside the load's transaction: one refused item, the rest stored (the
    staged load's set-based insert fails whole, and the writer takes every row instead)."""
    catalogue = tmp_path / f"one_bad.{fmt}"
    rows = [(f"A{n}", f"T{n}") for n in range(20)] + [("B", "Refused")]
    if fmt == "csv":
        catalogue.write_text("artist,title\n" + "".join(f"{a},{t}\n" for a, t in rows))
    else:
        catalogue.write_text("".join(f'{{"artist": "{a}", "title": "{t}"}}\n' for a, t in rows))
    refuse(db_url, "title")
    run_import(db_url, catalogue, "--bulk", "--batch-size", "7")
    assert query(db_url, "SELECT count(*) FROM tracks") == [(20,)]
    assert query(db_url, "SELECT count(*) FROM track_artists") == [(20,)]
    assert_refused_alone(db_url)


def refuse(url: str, column: str) -> None:
    """A constraint the importer does not know: tracks refuse the value 'Refused' in ``column``."""
    with closing(connect(url, autocommit=True)) as connection, connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("ALTER TABLE tracks ADD CONSTRAINT no_refused CHECK ({} <> 'Refused')").format(
                sql.Identifier(column)
            )
        )


def assert_refused_alone(url: str) -> None:
    """One row rejected, by the constraint of ``refuse``."""
    [(reason,)] = query(url, "SELECT reason FROM rejected_items")
    assert "no_refused" in reason


def test_a_bad_update_in_a_bulk_load_is_rejected_alone(db_url: str, tmp_path: Path) -> None:
    """The same when PostgreSQL refuses the set-based update of a stored track: the insert of
    the new tracks before it is rolled back too, and the writer takes every row."""
    stored = tmp_path / "stored.csv"
    stored.write_text("artist,title\n" + "".join(f"A{n},T{n}\n" for n in range(10)))
    run_import(db_url, stored)
    updates = tmp_path / "updates.csv"
    updates.write_text(
        "artist,title,label\n"
        + "".join(f"A{n},T{n},Label {n}\n" for n in range(9))
        + "A9,T9,Refused\n"
        + "".join(f"B{n},U{n},\n" for n in range(5))
    )
    refuse(db_url, "label")
    run_import(db_url, updates, "--bulk", "--batch-size", "4")
    assert query(db_url, "SELECT count(*) FROM tracks") == [(15,)]
    assert query(db_url, "SELECT count(*) FROM tracks WHERE label LIKE 'Label %'") == [(9,)]
    assert query(db_url, "SELECT label FROM tracks WHERE title = 'T9'") == [(None,)]
    assert_refused_alone(db_url)


@pytest.mark.slow
def test_other_writers_wait_for_a_bulk_load(db_url: str, tmp_path: Path) -> None:
    catalogue = generate(tmp_path / "big.csv", 20_000)
    process = start_import(db_url, catalogue, "--bulk", "--batch-size", "1000")
    backend = bulk_backend(db_url, time.monotonic() + 60)
    # Whether the bulk load still held the tables when the other writer's write returned: it
    # must not (the other writer waits for its commit); the load takes seconds, so a writer
    # that did not wait would see it holding them.
    loading_when_written: list[bool] = []

    def write() -> None:
        with BatchWriter(db_url, origin="test:other") as writer:
            writer.write([{"artist": "Other", "title": "Writer"}])
        loading_when_written.append((backend,) in query(db_url, TABLES_HELD))

    other = threading.Thread(target=write)
    other.start()
    assert (backend,) in query(db_url, TABLES_HELD), "the load ended before the writer started"
    process.communicate(timeout=600)
    other.join(timeout=60)
    assert process.returncode == 0
    assert loading_when_written == [False]
    assert query(db_url, "SELECT count(*) FROM tracks WHERE title = 'Writer'") == [(1,)]


def hold_the_catalogue_like_a_bulk_load(cursor: psycopg2.extensions.cursor) -> None:
    """What a bulk load holds until it commits: every writer's bucket and the tables."""
    cursor.execute(
        "SELECT count(pg_advisory_xact_lock(%s, b)) FROM generate_series(0, %s) AS b",
        (LOCK_CLASS, LOCK_BUCKETS - 1),
    )
    cursor.execute("LOCK TABLE tracks, import_row_digests IN ACCESS EXCLUSIVE MODE")


def write_to_track_lookup(cursor: psycopg2.extensions.cursor) -> None:
    """What any other writer holds while its batch runs."""
    cursor.execute("LOCK TABLE track_lookup IN ROW EXCLUSIVE MODE")


@pytest.mark.parametrize(
    ("hold", "options", "line"),
    [
        (write_to_track_lookup, ("--bulk",), "waiting for the catalogue's tables: 1 other session"),
        (
            hold_the_catalogue_like_a_bulk_load,
            (),
            "writes waiting for the catalogue's locks: 1 other session(s) hold them",
        ),
    ],
    ids=["a bulk load behind a writer", "an import behind a bulk load"],
)
def test_an_import_that_waits_for_locks_says_so(
    db_url: str, tmp_path: Path, hold: Any, options: tuple[str, ...], line: str
) -> None:
    catalogue = tmp_path / "small.jsonl"
    catalogue.write_text('{"artist": "A", "title": "T"}\n')
    with closing(connect(db_url)) as holder, holder.cursor() as cursor:
        hold(cursor)
        process = start_import(db_url, catalogue, *options, "--log-every", "0.5")
        # Two of its one-second tries, each followed by a progress line.
        wait_until_a_session_waits(db_url, process)
        time.sleep(2.5)
        assert process.poll() is None, "the import did not wait"
        holder.rollback()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert line in stderr
    assert query(db_url, "SELECT count(*) FROM tracks") == [(1,)]


def test_a_writer_waiting_for_locks_reports_and_gives_up_on_request(
    make_database, db_url: str
) -> None:
    waits: list[tuple[float, int]] = []
    outcome: list[BaseException | None] = []
    writer = BatchWriter(db_url, origin="test", on_lock_wait=lambda s, h: waits.append((s, h)))

    def write() -> None:
        try:
            writer.write([{"artist": "A", "title": "T"}])
            outcome.append(None)
        except DatabaseUnavailable as error:
            outcome.append(error)

    with (
        closing(connect(make_database())) as elsewhere,
        elsewhere.cursor() as other_catalogue,
        closing(connect(db_url)) as holder,
        holder.cursor() as cursor,
    ):
        # Another catalogue on the same server, busy with its own bulk load: not a holder.
        hold_the_catalogue_like_a_bulk_load(other_catalogue)
        hold_the_catalogue_like_a_bulk_load(cursor)
        thread = threading.Thread(target=write)
        thread.start()
        deadline = time.monotonic() + 30
        while len(waits) < 2:
            assert time.monotonic() < deadline, "no wait was reported"
            time.sleep(0.05)
        writer.give_up()
        thread.join(timeout=10)
        assert not thread.is_alive(), "give_up did not end the wait"
    writer.close()
    assert isinstance(outcome[0], DatabaseUnavailable)
    assert [holders for _, holders in waits[:2]] == [1, 1]
    assert waits[0][0] >= 0.9 and waits[1][0] > waits[0][0]
    assert query(db_url, "SELECT count(*) FROM tracks") == [(0,)]


def wait_until_a_session_waits(db_url: str, process: subprocess.Popen[str]) -> None:
    """Until a session of this database waits for a lock (a loaded machine may take seconds
    just to start the process)."""
    waiting = f"SELECT count(*) FROM pg_locks WHERE NOT granted AND {THIS_DATABASE}"
    deadline = time.monotonic() + 60
    while not query(db_url, waiting)[0][0]:
        assert process.poll() is None, "the process did not wait"
        assert time.monotonic() < deadline, "the process never asked for the locks"
        time.sleep(0.1)


# After its last row is read a bulk load of a CSV file is a few long statements: it says which.
BULK_STEPS = [
    "staging the file's rows",
    "resolving the staged rows",
    "inserting the new tracks",
    "inserting their artists and credits",
    "updating the stored tracks",
    "storing the new spellings",
    "remembering the rows stored (known rows)",
    "storing the tangled rows through the batch writer, in file order",
    "naming the artists the load made",
    "building the search indexes again",
    "adding the foreign keys back, checking every row",
    "committing",
]


def tangled_catalogue(path: Path) -> Path:
    """Simple rows, and a title key with two recordings (tangled: through the writer)."""
    path.write_text(
        "artist,title,isrc\nA,One,\nB,Two,USRC17607839\nC,Three,GBAYE0601498\nC,Three,USRC17607840\n"
    )
    return path


def test_a_bulk_load_logs_which_step_runs(db_url: str, tmp_path: Path) -> None:
    result = run_import(db_url, tangled_catalogue(tmp_path / "tangled.csv"), "--bulk")
    said = [
        line.split("import progress: bulk load: ", 1)[1]
        for line in result.stderr.splitlines()
        if "import progress: bulk load: " in line
    ]
    assert [line.rsplit(" (", 1)[0] for line in said] == BULK_STEPS, result.stderr
    assert said[-1].startswith("committing (4 rows read, 0:00:0")
    assert query(db_url, "SELECT count(*) FROM tracks") == [(4,)]


def test_a_bulk_load_shows_its_step_on_the_terminal(db_url: str, tmp_path: Path) -> None:
    """On a terminal each step replaces the bar's line (no log line), the bar coming back at
    the end."""
    catalogue = tangled_catalogue(tmp_path / "tangled.csv")
    leader, follower = pty.openpty()
    environment = {**os.environ, "DATABASE_URL": db_url, "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(catalogue), "--bulk"],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    shown = b""
    with suppress(OSError):  # EIO once the process has closed the terminal
        while chunk := os.read(leader, 65536):
            shown += chunk
    os.close(leader)
    process.communicate(timeout=120)
    assert process.returncode == 0
    text = shown.decode()
    steps = re.findall(r"\rbulk load: (.*?) \([\d,]+ rows read, ", text)
    assert steps == BULK_STEPS, text
    assert "import progress: bulk load" not in text
    assert re.search(r"\r\[#+\] 100%  4 rows", text), text


def search_indexes(url: str) -> list[tuple]:
    """``track_lookup``'s GIN indexes: name, definition, valid, and the index's own oid."""
    return query(
        url,
        "SELECT i.relname, pg_get_indexdef(i.oid), x.indisvalid, i.oid::bigint FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am a ON a.oid = i.relam"
        " WHERE x.indrelid = 'track_lookup'::regclass AND a.amname = 'gin' ORDER BY 1",
    )


def test_a_first_bulk_load_builds_the_search_indexes_again_as_they_were(
    db_url: str, tmp_path: Path
) -> None:
    """Into an empty catalogue the GIN indexes are dropped and built again after the load: the
    same definitions, valid, and they find the loaded spellings."""
    before = search_indexes(db_url)
    assert len(before) == 2  # migration 011's trigram and full-text indexes
    result = run_import(db_url, tangled_catalogue(tmp_path / "first.csv"), "--bulk")
    assert "bulk load: building the search indexes again" in result.stderr, result.stderr
    after = search_indexes(db_url)
    assert [row[:2] for row in after] == [row[:2] for row in before]
    assert all(valid for _, _, valid, _ in after)
    assert [row[3] for row in after] != [row[3] for row in before]  # built anew
    with closing(connect(db_url)) as connection, connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute(
            "SELECT raw_title FROM track_lookup WHERE (raw_artist || ' ' || raw_title) ILIKE %s",
            ("%b two%",),
        )
        assert cursor.fetchall() == [("Two",)]


def test_a_small_bulk_load_into_a_larger_catalogue_keeps_the_search_indexes(
    db_url: str, tmp_path: Path
) -> None:
    """Building the indexes reads the whole table: a load that adds fewer spellings than the
    table holds inserts into them instead."""
    run_import(db_url, generate(tmp_path / "catalogue.csv", 300))
    before = search_indexes(db_url)
    result = run_import(db_url, tangled_catalogue(tmp_path / "small.csv"), "--bulk")
    assert result.returncode == 0, result.stderr
    assert "building the search indexes" not in result.stderr
    assert search_indexes(db_url) == before  # the same indexes, not dropped
