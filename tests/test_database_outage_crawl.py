"""A real ``scrapy crawl 1001tracklists`` through a long database outage, ended by SIGTERM.

The site is served locally: an endless DJ listing (each page links ten tracklists and the next
page), every tracklist the project's demo page under its own id. The database URL points at a
port nothing listens on. As a service manager would, the test sends SIGTERM and, 10 s later,
``kill -9`` if the crawl is still alive.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from scrapers.db.server import migrations
from scrapers.db.server.connection import connect
from scrapers.db.server.embedded import EmbeddedPostgres
from tests.serving import serving
from tests.sitegen import make_tracklists, tracklist_page
from tests.test_database_pipeline import query, spooled_lines

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "tests" / "fixtures" / "1001tracklists" / "demo_tracklist.html"
UNREACHABLE = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1"
BATCH_SIZE = 50
KILL_AFTER = 10.0  # seconds between SIGTERM and kill -9, as systemd or Docker would


class EndlessSite:
    """An endless DJ listing on 127.0.0.1 whose tracklists are the demo page."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.tracklists_served = 0

    @staticmethod
    def listing(page: int) -> bytes:
        links = "".join(
            f'<div class="bItm action oItm" data-id="o{page:04d}x{k}"><div class="bCont">'
            f'<div class="bTitle"><a href="/tracklist/o{page:04d}x{k}/set.html">Set {k}</a>'
            "</div></div></div>\n"
            for k in range(10)
        )
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Outage DJ</title></head>"
            f"<body><h1>Outage DJ</h1>{links}<ul class='pagination bs'>"
            f"<li><a href='/dj/outage/index{page + 1}.html'>Next</a></li></ul></body></html>"
        ).encode()

    def answer(self, path: str) -> bytes | None:
        if path == "/robots.txt":
            return b"User-agent: *\nAllow: /\n"
        listing = re.fullmatch(r"/dj/outage/index(\d*)\.html", path)
        if listing:
            return self.listing(int(listing[1] or 1))
        tracklist = re.fullmatch(r"/tracklist/([0-9a-z]+)/set\.html", path)
        if tracklist:
            self.tracklists_served += 1
            return DEMO.read_bytes().replace(b"9demo01x", tracklist[1].encode())
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site.answer(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def endless_site() -> Iterator[EndlessSite]:
    site = EndlessSite()
    with serving(site.server):
        yield site


def sigterm_after(
    command: list[str], database_url: str, before: Callable[[], None]
) -> tuple[float, bool, str, int | None]:
    """Run the crawl ``command``; after ``before()`` returns, SIGTERM it, and ``kill -9`` it
    ``KILL_AFTER`` seconds later if it is still running. Returns the seconds it took to exit
    after SIGTERM, whether it had to be killed, its log, and its exit status."""
    crawl = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log_lines: list[str] = []
    reader = threading.Thread(target=lambda: log_lines.extend(crawl.stderr), daemon=True)
    reader.start()
    killed = False
    try:
        before()
        assert crawl.poll() is None, "".join(log_lines)[-3000:]
        crawl.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        try:
            crawl.wait(timeout=KILL_AFTER)
        except subprocess.TimeoutExpired:
            crawl.kill()
            killed = True
            crawl.wait()
        exited_after = time.monotonic() - signalled
    finally:
        if crawl.poll() is None:
            crawl.kill()
    reader.join(timeout=10)
    return exited_after, killed, "".join(log_lines), crawl.returncode


def stat(log: str, name: str) -> int:
    match = re.search(rf"'{re.escape(name)}': (\d+)", log)
    assert match, f"no {name} in the stats: {log[-3000:]}"
    return int(match.group(1))


@pytest.mark.slow
def test_sigterm_in_a_long_outage_spools_every_item_within_seconds(
    endless_site: EndlessSite, tmp_path: Path, db_url: str
) -> None:
    spool_dir = tmp_path / "spool"
    settings = {
        "TRACKLISTS_SITE_URL": endless_site.base,
        "DATABASE_BATCH_SIZE": str(BATCH_SIZE),
        "DATABASE_RETRY_TIMEOUT": "3",
        "DATABASE_SPOOL_DIR": str(spool_dir),
        "PROMETHEUS_ENABLED": "False",
        "DOWNLOAD_DELAY": "0",
        "AUTOTHROTTLE_ENABLED": "False",
        "LOG_LEVEL": "INFO",
    }
    command = [sys.executable, "-m", "scrapy", "crawl", "1001tracklists", "-a", "dj=outage"]
    for name, value in settings.items():
        command += ["-s", f"{name}={value}"]

    def well_into_the_outage() -> None:
        """Until 30 tracklists were fetched and the writer gave up on a batch (a spool file):
        not a fixed time, which a busy machine (parallel test workers) spent opening the crawl."""
        deadline = time.monotonic() + 120
        while endless_site.tracklists_served < 30 or not any(
            path.stat().st_size for path in spool_dir.glob("*.jsonl")
        ):
            assert time.monotonic() < deadline, "the crawl never got into the outage"
            time.sleep(0.1)

    outcome = sigterm_after(command, UNREACHABLE, well_into_the_outage)
    exited_after, killed, log, returncode = outcome

    spooled = spooled_lines(spool_dir)
    assert not killed, f"still running {KILL_AFTER} s after SIGTERM: {log[-3000:]}"
    assert exited_after < 6, log[-3000:]
    assert returncode == 1, log[-3000:]
    # The pipeline never held more than two batches, however long the outage.
    assert stat(log, "database/items_held_max") <= 2 * BATCH_SIZE
    # Every item the spider yielded went through the pipeline and is in the spool.
    pages, rows = stat(log, "tracklist/pages"), stat(log, "tracklist/rows")
    assert pages >= 20, "the outage must outlast many batches for this test to mean anything"
    assert stat(log, "item_scraped_count") == pages + rows == len(spooled)
    assert stat(log, "database/items_spooled") == len(spooled)

    # The documented replay stores them all once the database is back.
    replay = subprocess.run(
        [sys.executable, "scripts/import_tracks.py", "--format", "jsonl",
         *map(str, sorted(spool_dir.glob("*.jsonl")))],
        cwd=REPO, env={**os.environ, "DATABASE_URL": db_url},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr[-3000:]
    assert query(db_url, "SELECT count(*) FROM setlists") == [(pages,)]
    assert query(db_url, "SELECT count(*) FROM setlist_tracks") == [(rows,)]


@pytest.fixture
def private_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL cluster of this test's own, which it may crash: never the shared server.
    Its folder is under /tmp, which the server's own user (when run as root) can enter."""
    state = Path(tempfile.mkdtemp(prefix="outage-pg-", dir="/tmp"))
    server = EmbeddedPostgres(state)
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.slow
def test_sigterm_while_the_writer_retries_with_default_settings_ends_within_seconds(
    private_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    """The issue's command shape: 40 ``file://`` pages, a batch of 20 or one a second, the
    database crashed (``pg_ctl -m immediate stop``) 6 s in, SIGTERM 15 s later, and the
    default DATABASE_RETRY_* settings: the writer is still retrying when SIGTERM comes."""
    running = private_postgres.ensure_running()
    admin = running.url("postgres")
    with closing(connect(admin, autocommit=True)) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE DATABASE catalogue")
    migrations.upgrade(running.url("catalogue"))
    pages = tmp_path / "pages"
    pages.mkdir()
    urls = []
    for tracklist in make_tracklists(40):
        page = pages / f"{tracklist.source_id}.html"
        page.write_bytes(tracklist_page(tracklist))
        urls.append(page.as_uri())
    spool_dir = tmp_path / "spool"
    command = [sys.executable, "-m", "scrapy", "crawl", "1001tracklists",
               "-a", "start_urls=" + ",".join(urls),
               "-s", "DOWNLOAD_DELAY=0.5", "-s", "AUTOTHROTTLE_ENABLED=False",
               "-s", "DATABASE_BATCH_SIZE=20", "-s", "DATABASE_BATCH_MAX_LATENCY=1",
               "-s", f"DATABASE_SPOOL_DIR={spool_dir}",
               "-s", "PROMETHEUS_ENABLED=False"]  # fmt: skip

    def crash_the_database_then_wait() -> None:
        time.sleep(6)
        private_postgres.stop("immediate")
        time.sleep(15)

    exited_after, _, log, returncode = sigterm_after(
        command, running.url("catalogue"), crash_the_database_then_wait
    )
    print(f"exited {exited_after:.1f} s after SIGTERM")
    assert exited_after < 5, f"{exited_after:.1f} s after SIGTERM: {log[-3000:]}"
    assert returncode == 1, log[-3000:]

    # Every item scraped is in the catalogue or the spool.
    catalogue = private_postgres.ensure_running().url("catalogue")
    stored_setlists = query(
        catalogue, "SELECT source_id FROM setlists WHERE checked_at IS NOT NULL"
    )
    stored_rows = query(catalogue, "SELECT count(*) FROM setlist_tracks")[0][0]
    spooled = spooled_lines(spool_dir)
    spooled_setlists = {item["source_id"] for item in spooled if "setlist_source_id" not in item}
    spooled_rows = {
        (item["setlist_source_id"], item["row_index"])
        for item in spooled
        if "setlist_source_id" in item
    }
    assert spooled, "the crawl outlasted the database: something must have been spooled"
    scraped = stat(log, "item_scraped_count")
    setlists_seen = {source_id for (source_id,) in stored_setlists} | spooled_setlists
    assert len(setlists_seen) == stat(log, "tracklist/pages")
    assert stored_rows + len(spooled_rows) >= stat(log, "tracklist/rows")
    assert len(stored_setlists) + stored_rows + len(spooled) >= scraped
    assert stat(log, "database/items_spooled") == len(spooled)
