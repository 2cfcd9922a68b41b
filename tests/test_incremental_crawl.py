"""Incremental, refreshing and resumable crawls of a generated site of 200 tracklists.

Each crawl runs in a child process (``tests.crawl_process``) against ``tests.sitegen``'s site on
127.0.0.1, storing into a test database through the project's real pipelines.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from scrapers.crawl.refresh import RefreshPolicy
from scrapers.db.known_setlists import StoredSetlist
from scrapers.db.server.connection import connect
from scrapers.settings_check import project_settings
from tests.sitegen import GeneratedSite, Row, make_tracklists
from tests.test_import_bulk import hold_the_catalogue_like_a_bulk_load, wait_until_a_session_waits

REPO = Path(__file__).resolve().parents[1]
TRACKLISTS = 200
RECENT = 10
LISTING_PAGES = 10  # 20 links a page


def crawl_settings(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "EXTENSIONS": {},
        "TELNETCONSOLE_ENABLED": False,
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": False,
        "LOG_LEVEL": "INFO",
        "DATABASE_SPOOL_DIR": str(tmp_path / "spool"),
        "DATABASE_BATCH_MAX_LATENCY": 1.0,
        **extra,
    }


def start_crawl(
    db_url: str, settings: dict[str, Any], arguments: dict[str, str], spider: str = "1001tracklists"
) -> subprocess.Popen[str]:
    config = json.dumps({"settings": settings, "arguments": arguments, "spider": spider})
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crawl_process", config],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "DATABASE_URL": db_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 240) -> tuple[dict[str, Any], str]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    [line] = [line for line in out.splitlines() if line.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT ")), err


def crawl(
    db_url: str, site: GeneratedSite, tmp_path: Path, arguments: dict[str, str] | None = None,
    **settings: Any,
) -> tuple[dict[str, Any], str]:  # fmt: skip
    process = start_crawl(
        db_url,
        crawl_settings(tmp_path, **settings),
        {"start_urls": site.start_url, **(arguments or {})},
    )
    return finish(process)


@pytest.fixture
def site() -> Iterator[GeneratedSite]:
    generated = GeneratedSite(make_tracklists(TRACKLISTS, recent=RECENT)).start()
    yield generated
    generated.stop()


def stored_rows(db: Any) -> dict[tuple[str, int], tuple[Any, ...]]:
    """Every stored setlist row with its row version (xmin changes when a row is written)."""
    with db.cursor() as cursor:
        cursor.execute(
            """
            SELECT s.source_id, t.row_index, t.xmin::text, t.track_id::text, t.is_unknown,
                   t.raw_title, t.position
            FROM setlist_tracks t JOIN setlists s ON s.id = t.setlist_id
            """
        )
        return {(row[0], row[1]): row[2:] for row in cursor.fetchall()}


def setlist_state(db: Any) -> dict[str, tuple[Any, ...]]:
    with db.cursor() as cursor:
        cursor.execute("SELECT source_id, updated_at, checked_at, content_hash FROM setlists")
        return {row[0]: row[1:] for row in cursor.fetchall()}


@pytest.mark.slow
def test_a_second_crawl_fetches_only_due_tracklists_and_updates_only_changed_rows(
    site: GeneratedSite, db_url: str, db: Any, tmp_path: Path
) -> None:
    crawl(db_url, site, tmp_path)
    fetched = Counter(site.tracklist_fetches())
    assert len(fetched) == TRACKLISTS and set(fetched.values()) == {1}
    before_rows, before_sets = stored_rows(db), setlist_state(db)
    assert len(before_sets) == TRACKLISTS
    assert all(checked and digest for _, checked, digest in before_sets.values())
    assert len(before_rows) == sum(len(t.rows) for t in site.tracklists)

    # The site changes: in set 0 an "ID" row is identified and a row is added; set 4 loses
    # its last row. Sets 0-9 are recent, so due when refreshing every 0 days.
    changed, shortened = site.tracklists[0], site.tracklists[4]
    assert changed.rows[2].artist is None
    changed.rows[2] = Row("Artist 5", "Identified At Last", "t90001z", 360)
    changed.rows.append(Row("Artist 6", "Encore", "t90002z", 9000))
    removed_index = len(shortened.rows) - 1
    shortened.rows.pop()
    with db.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tracks")
        (tracks_before,) = cursor.fetchone()
    site.requests.clear()

    second, _ = crawl(db_url, site, tmp_path, CRAWL_REFRESH_RECENT_EVERY_DAYS=0)

    paths = site.paths()
    assert sorted(site.tracklist_fetches()) == [t.source_id for t in site.tracklists[:RECENT]]
    assert sum(path.startswith("/tracklists/") for path in paths) == LISTING_PAGES
    assert second["tracklists/known_lookups"] == LISTING_PAGES  # one query per listing page
    skipped = {k: v for k, v in second.items() if k.startswith("tracklists/skipped/")}
    assert sum(skipped.values()) == TRACKLISTS - RECENT
    assert second["tracklists/refresh_changed"] == 2
    assert second["tracklists/refresh_unchanged"] == RECENT - 2

    after_rows, after_sets = stored_rows(db), setlist_state(db)
    rewritten = {key for key in after_rows if after_rows[key] != before_rows.get(key)}
    assert rewritten == {("g000000x", 2), ("g000000x", len(changed.rows) - 1)}
    assert after_rows[("g000000x", 2)][2:4] == (False, "Identified At Last")
    assert ("g000004x", removed_index) in before_rows
    assert ("g000004x", removed_index) not in after_rows
    assert set(before_rows) - set(after_rows) == {("g000004x", removed_index)}
    with db.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tracks")
        assert cursor.fetchone()[0] == tracks_before + 2  # two new tracks, none deleted
    for source_id, (updated, checked, digest) in after_sets.items():
        old_updated, old_checked, old_digest = before_sets[source_id]
        due = source_id in {t.source_id for t in site.tracklists[:RECENT]}
        assert (checked > old_checked) == due, source_id
        assert (digest != old_digest) == (source_id in {"g000000x", "g000004x"}), source_id
        assert (updated != old_updated) == (digest != old_digest), source_id

    # refresh=none: the recent sets are due by the settings, but nothing is fetched again.
    site.requests.clear()
    third, _ = crawl(db_url, site, tmp_path, {"refresh": "none"}, CRAWL_REFRESH_RECENT_EVERY_DAYS=0)
    assert site.tracklist_fetches() == []
    assert third["tracklists/skipped/refresh_none"] == TRACKLISTS
    assert stored_rows(db) == after_rows


def test_max_pages_counts_only_the_tracklists_a_crawl_fetches(
    site: GeneratedSite, db_url: str, tmp_path: Path
) -> None:
    crawl(db_url, site, tmp_path, {"max_pages": "20"})  # the first listing page's 20 sets
    first = set(site.tracklist_fetches())
    assert len(first) == 20
    site.requests.clear()
    # Those 20 are known now: a second crawl pages on to 20 it does not know yet.
    crawl(db_url, site, tmp_path, {"max_pages": "20", "refresh": "none"})
    second = site.tracklist_fetches()
    assert len(second) == 20 and not set(second) & first


@pytest.mark.slow
def test_a_crawl_stopped_with_ctrl_c_resumes_from_its_jobdir(
    site: GeneratedSite, db_url: str, db: Any, tmp_path: Path
) -> None:
    settings = crawl_settings(tmp_path, JOBDIR=str(tmp_path / "job"), DOWNLOAD_DELAY=0.02)
    arguments = {"start_urls": site.start_url}
    process = start_crawl(db_url, settings, arguments)
    deadline = time.monotonic() + 120
    while len(site.tracklist_fetches()) < 60:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    first, _ = finish(process)
    assert first["finish_reason"] == "shutdown"
    stopped_after = len(site.tracklist_fetches())
    assert stopped_after < TRACKLISTS

    second, _ = finish(start_crawl(db_url, settings, arguments))
    assert second["finish_reason"] == "finished"
    fetched = Counter(site.tracklist_fetches())
    assert len(fetched) == TRACKLISTS and set(fetched.values()) == {1}
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE checked_at IS NOT NULL) FROM setlists"
        )
        assert cursor.fetchone() == (TRACKLISTS, TRACKLISTS)
        cursor.execute("SELECT count(*) FROM setlist_tracks")
        assert cursor.fetchone()[0] == sum(len(t.rows) for t in site.tracklists)


def scrapy_command(*args: str) -> subprocess.CompletedProcess[str]:
    """``scrapy <args>`` in the project, without the metrics server or telnet console."""
    return subprocess.run(
        [sys.executable, "-m", "scrapy", *args,
         "-s", "EXTENSIONS={}", "-s", "TELNETCONSOLE_ENABLED=False"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_an_invalid_refresh_argument_stops_the_crawl_with_an_error() -> None:
    done = scrapy_command("crawl", "1001tracklists", "-a", "refresh=sometimes")
    # Refused before the crawl starts, like every other bad argument: a usage error, one line.
    assert done.returncode == 2
    assert "error: spider argument refresh: one of due, all, none" in done.stderr
    assert "Traceback" not in done.stderr


NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def stored(*, set_age: float, checked_ago: float, id_rows: bool) -> StoredSetlist:
    return StoredSetlist(
        source_id="x",
        content_hash="h",
        checked_at=NOW - dt.timedelta(days=checked_ago),
        set_date=(NOW - dt.timedelta(days=set_age)).date(),
        created_at=NOW - dt.timedelta(days=set_age),
        has_id_rows=id_rows,
    )


@pytest.mark.parametrize(
    ("set_age", "checked_ago", "id_rows", "reason"),
    [
        (5, 4, False, None),  # recent, checked 4 days ago: due (every 3 days)
        (5, 1, True, "recent_checked"),
        (100, 40, True, None),  # older with "ID" rows, checked 40 days ago: due (every 30)
        (100, 10, True, "id_rows_checked"),
        (400, 400, True, "id_rows_too_old"),
        (100, 400, False, "complete"),  # an old complete set: never
    ],
)
def test_refresh_policy_defaults(
    set_age: float, checked_ago: float, id_rows: bool, reason: str | None
) -> None:
    policy = RefreshPolicy.from_settings(project_settings({}), None)
    assert (
        policy.skip_reason(stored(set_age=set_age, checked_ago=checked_ago, id_rows=id_rows), NOW)
        == reason
    )


def test_refresh_policy_modes_and_bad_settings() -> None:
    fresh = stored(set_age=1, checked_ago=0, id_rows=True)
    assert RefreshPolicy.from_settings(project_settings({}), "all").skip_reason(fresh, NOW) is None
    assert (
        RefreshPolicy.from_settings(project_settings({"CRAWL_REFRESH": "none"}), None).skip_reason(
            stored(set_age=1, checked_ago=10, id_rows=True), NOW
        )
        == "refresh_none"
    )
    with pytest.raises(ValueError, match="CRAWL_REFRESH_RECENT_DAYS"):
        RefreshPolicy.from_settings(project_settings({"CRAWL_REFRESH_RECENT_DAYS": "soon"}), None)
    with pytest.raises(ValueError, match="refresh"):
        RefreshPolicy.from_settings(project_settings({}), "weekly")


def test_a_crawl_on_a_schema_older_than_the_code_stops_and_exits_1(
    make_database, site: GeneratedSite, tmp_path: Path
) -> None:
    db_url = make_database("006_enrichment_workers")
    settings = [f"{name}={value}" for name, value in crawl_settings(tmp_path).items()]
    done = subprocess.run(
        [sys.executable, "-m", "scrapy", "crawl", "1001tracklists",
         "-a", f"start_urls={site.start_url}",
         *(part for setting in settings for part in ("-s", setting))],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "DATABASE_URL": db_url},
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert "'finish_reason': 'database_schema_outdated'" in done.stderr, done.stderr[-3000:]
    assert done.returncode == 1


def test_a_lookup_behind_a_bulk_import_says_it_waits(db_url: str, tmp_path: Path) -> None:
    """The known-tracklist lookup of a listing page waits on a bulk import's locks like a write
    does, and says so (a WARNING at once) instead of sitting silent."""
    small = GeneratedSite(make_tracklists(3)).start()
    try:
        with closing(connect(db_url)) as holder, holder.cursor() as cursor:
            hold_the_catalogue_like_a_bulk_load(cursor)
            cursor.execute("LOCK TABLE setlists, setlist_tracks IN ACCESS EXCLUSIVE MODE")
            process = start_crawl(db_url, crawl_settings(tmp_path), {"start_urls": small.start_url})
            wait_until_a_session_waits(db_url, process)
            time.sleep(2.5)  # two of its one-second tries
            assert process.poll() is None, "the crawl did not wait"
            holder.rollback()
        _, log = finish(process)
    finally:
        small.stop()
    assert (
        "The lookup of known tracklists waiting 1s for the catalogue's locks:"
        " 1 other session(s) hold them (an import with --bulk holds them until it commits)"
    ) in log
    assert len(small.tracklist_fetches()) == 3


def test_sigterm_ends_a_crawl_whose_lookup_waits_behind_a_bulk_import(
    db_url: str, tmp_path: Path
) -> None:
    """A lookup waiting for a bulk import's locks gives up when the crawl is stopped: SIGTERM
    ends the crawl within seconds, not when the import commits."""
    small = GeneratedSite(make_tracklists(3)).start()
    try:
        with closing(connect(db_url)) as holder, holder.cursor() as cursor:
            hold_the_catalogue_like_a_bulk_load(cursor)
            cursor.execute("LOCK TABLE setlists, setlist_tracks IN ACCESS EXCLUSIVE MODE")
            process = start_crawl(db_url, crawl_settings(tmp_path), {"start_urls": small.start_url})
            wait_until_a_session_waits(db_url, process)
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            try:
                _, log = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                _, log = process.communicate()
            exited_after = time.monotonic() - signalled
            holder.rollback()
    finally:
        small.stop()
    assert exited_after < 5, f"{exited_after:.1f} s after SIGTERM: {log[-3000:]}"
    assert "'finish_reason': 'shutdown'" in log, log[-3000:]
    assert small.tracklist_fetches() == []
