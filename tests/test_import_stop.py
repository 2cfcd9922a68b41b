"""Stopping an import while PostgreSQL runs a long statement of it: SIGTERM or Ctrl-C ends it
within a supervisor's grace, storing nothing half-applied, and a ``kill -9`` leaves no backend
holding the catalogue's locks.

A statement is made long the way a slow server or a huge file makes it: a trigger on ``tracks``
that sleeps, created in the test's own database (the import's code is not touched).
"""

from __future__ import annotations

import signal
import subprocess
import time
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from scrapers.db.server.connection import connect
from scrapers.importers.driver import STOP_GRACE_SECONDS
from tests.conftest import THIS_DATABASE
from tests.test_import import (
    as_jsonl,
    assert_nothing_half_applied,
    generate,
    query,
    start_import,
    summary_value,
)
from tests.test_import_bulk import foreign_keys

SLEEP_SECONDS = 60
# A supervisor's grace: `kill -9` this long after SIGTERM (systemd's default is 90 s, Docker's
# 10 s; the project's rule is a few seconds).
GRACE = 5.0
# How long another session may wait for `tracks` once the importer is gone.
LOCK_WITHIN = 5.0

# Every statement that inserts into tracks sleeps (COPY and INSERT ... SELECT alike).
SLOW_TRACKS = f"""
CREATE FUNCTION slow_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep({SLEEP_SECONDS}); RETURN NULL; END $$;
CREATE TRIGGER slow_statement AFTER INSERT ON tracks
    FOR EACH STATEMENT EXECUTE FUNCTION slow_statement();
SELECT 1
"""
SLEEPING = (
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
    " AND datname = current_database()"
)


def start_sleeping_import(url: str, catalogue: Path, *options: str) -> subprocess.Popen[str]:
    """The import, once PostgreSQL sleeps in one of its statements."""
    query(url, SLOW_TRACKS)
    process = start_import(url, catalogue, "--batch-size", "500", *options)
    deadline = time.monotonic() + 60
    while not query(url, SLEEPING)[0][0]:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the import never reached the slow statement"
        time.sleep(0.05)
    return process


def stop(process: subprocess.Popen[str], signum: int, times: int = 1) -> tuple[str, str, float]:
    """Send ``signum`` (``times`` in a row); ``kill -9`` after ``GRACE`` as a supervisor would,
    which fails the test. Returns stdout, stderr and the seconds the process took to exit."""
    sent = time.monotonic()
    for _ in range(times):
        process.send_signal(signum)
        time.sleep(0.1)
    try:
        stdout, stderr = process.communicate(timeout=GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"still running {GRACE} s after the signal:\n{stdout}\n{stderr[-3000:]}")
    return stdout, stderr, time.monotonic() - sent


def assert_tracks_free_within(url: str, seconds: float) -> None:
    """Another session gets ``tracks`` exclusively within ``seconds``: no backend of the import
    still runs its statement or holds its locks."""
    with closing(connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = %s", (f"{int(seconds * 1000)}ms",))
        try:
            cursor.execute("LOCK TABLE tracks IN ACCESS EXCLUSIVE MODE")
        except psycopg2.errors.LockNotAvailable:
            holders = query(
                url,
                "SELECT pid, state, wait_event, left(query, 80) FROM pg_stat_activity"
                f" WHERE pid IN (SELECT pid FROM pg_locks WHERE {THIS_DATABASE})",
            )
            pytest.fail(f"tracks still locked after {seconds} s: {holders}")
        connection.rollback()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "jsonl"),
    [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGTERM, True)],
    ids=["SIGTERM", "Ctrl-C", "SIGTERM, JSON lines"],
)
def test_a_bulk_load_stopped_in_a_long_statement_ends_at_once_and_stores_nothing(
    db_url: str, tmp_path: Path, signum: int, jsonl: bool
) -> None:
    """A CSV file's SQL runs in the importer's main thread (``staged``), other formats' batches
    in the writer's thread: either statement is cancelled at once, the load rolled back."""
    catalogue = generate(tmp_path / "catalogue.csv", 2000)
    if jsonl:
        catalogue = as_jsonl(catalogue)
    keys = foreign_keys(db_url)
    process = start_sleeping_import(db_url, catalogue, "--bulk")
    stdout, stderr, took = stop(process, signum)
    print(f"exited {took:.1f} s after the signal")
    assert process.returncode == 130, stderr[-3000:]
    assert "INTERRUPTED: run the same command again to finish." in stdout
    assert "bulk load rolled back: nothing of it was stored" in stdout
    assert summary_value(stdout, "inserted / updated").startswith("0 new tracks")
    assert_tracks_free_within(db_url, LOCK_WITHIN)
    assert query(db_url, "SELECT count(*) FROM tracks") == [(0,)]
    assert foreign_keys(db_url) == keys


@pytest.mark.slow
@pytest.mark.parametrize("signals", [1, 2], ids=["once", "twice"])
def test_an_import_stopped_in_a_long_statement_ends_within_the_grace(
    db_url: str, tmp_path: Path, signals: int
) -> None:
    """The shared mode: the batch stuck in the writer's thread is cancelled and rolled back
    once the grace for handed-over batches is over (at once on a second signal); what the
    summary says is what is stored."""
    catalogue = generate(tmp_path / "catalogue.csv", 3000)
    process = start_sleeping_import(db_url, catalogue)
    stdout, stderr, took = stop(process, signal.SIGTERM, signals)
    print(f"exited {took:.1f} s after the signal")
    if signals > 1:
        assert took < STOP_GRACE_SECONDS
    assert process.returncode == 130, stderr[-3000:]
    assert "INTERRUPTED: run the same command again to finish." in stdout
    assert_tracks_free_within(db_url, LOCK_WITHIN)
    stored = int(summary_value(stdout, "inserted / updated").split()[0].replace(",", ""))
    assert query(db_url, "SELECT count(*) FROM tracks") == [(stored,)]
    assert_nothing_half_applied(db_url)


@pytest.mark.slow
def test_a_bulk_importer_killed_in_a_long_statement_frees_the_catalogue(
    db_url: str, tmp_path: Path
) -> None:
    """``kill -9`` leaves no one to cancel the statement: the backend notices its client is gone
    (``client_connection_check_interval``) and ends, releasing the locks everyone waits for."""
    catalogue = generate(tmp_path / "catalogue.csv", 2000)
    process = start_sleeping_import(db_url, catalogue, "--bulk")
    process.kill()
    process.communicate(timeout=60)
    assert_tracks_free_within(db_url, LOCK_WITHIN)
    assert query(db_url, "SELECT count(*) FROM tracks") == [(0,)]
