"""Faults around the database pipeline: a restarting server, SIGTERM, an unreachable database.

The crawls here run ``scrapy crawl`` in a subprocess with the small spider below (Scrapy finds
it through ``-s SPIDER_MODULES=tests.test_database_pipeline_faults``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest
import scrapy

from scrapers.db.server import migrations
from scrapers.db.server.connection import connect, ensure_database
from scrapers.db.server.embedded import EmbeddedPostgres
from scrapers.pipelines.database_pipeline import CLOSE_GRACE, DatabasePipeline
from tests.test_database_pipeline import make_pipeline, query, run_items, spooled_lines
from tests.test_database_setup import throwaway_state_dir

REPO_ROOT = Path(__file__).resolve().parents[1]


class FeedSpider(scrapy.Spider):
    """Yields ``count`` plan-shape track items, one per ``data:`` response (no network),
    requesting one every ``delay`` seconds.

    Items come from callbacks, as a real crawl's do: Scrapy's graceful shutdown lets in-flight
    responses finish and stops scheduling new ones.
    """

    name = "pipeline_feed"

    def __init__(self, count: str = "10", delay: str = "0", stall: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.count = int(count)
        self.delay = float(delay)
        self.stall = stall  # a URL that never answers: a graceful stop waits for it

    async def start(self):  # type: ignore[override]
        if self.stall:
            yield scrapy.Request(self.stall, callback=self.parse_item, dont_filter=True)
        for n in range(self.count):
            yield scrapy.Request(f"data:,{n}", callback=self.parse_item, dont_filter=True)
            if self.delay:
                await asyncio.sleep(self.delay)

    def parse_item(self, response: scrapy.http.Response):
        n = int(response.text)
        yield {"artist_name": "Feed Artist", "track_name": f"Feed Song {n}"}


def crawl_command(db_url: str, *args: str) -> list[str]:
    settings = {
        "SPIDER_MODULES": "tests.test_database_pipeline_faults",
        "ITEM_PIPELINES": json.dumps(
            {"scrapers.pipelines.database_pipeline.DatabasePipeline": 800}
        ),
        "DATABASE_URL": db_url,
        "PROMETHEUS_ENABLED": "False",
        "DOWNLOAD_DELAY": "0",
        "AUTOTHROTTLE_ENABLED": "False",
        "LOG_LEVEL": "INFO",
        # "Crawled N pages …, scraped N items" twice a second: what signalled_crawl waits for.
        "LOGSTATS_INTERVAL": "0.5",
    }
    command = [sys.executable, "-m", "scrapy", "crawl", "pipeline_feed"]
    for name, value in settings.items():
        command += ["-s", f"{name}={value}"]
    return [*command, *args]


def crawl_env(db_url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": str(REPO_ROOT)}


def scraped_count(log: str) -> int:
    match = re.search(r"'item_scraped_count': (\d+)", log)
    return int(match.group(1)) if match else 0


def signalled_crawl(
    command: list[str], db_url: str, scraped: int, signals: list[tuple[float, int]]
) -> tuple[int, str]:
    """Run the crawl until its log says it has scraped at least ``scraped`` items, then send each
    signal after its pause; return the exit status and the log.

    Waiting for the log, not a fixed time: on a busy machine Scrapy can take seconds to start, and
    a signal sent before it installed its handlers ends it at once (a KeyboardInterrupt in an
    import was seen with parallel test workers).
    """
    crawl = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=crawl_env(db_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reached = threading.Event()

    def read_log() -> None:
        for line in crawl.stderr:
            lines.append(line)
            progress = re.search(r"scraped (\d+) items", line)
            if progress and int(progress.group(1)) >= scraped:
                reached.set()

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    try:
        assert reached.wait(120), f"never scraped {scraped} items:\n{''.join(lines)[-3000:]}"
        for pause, signum in signals:
            time.sleep(pause)
            crawl.send_signal(signum)
        crawl.wait(timeout=120)
        reader.join(timeout=60)
    finally:
        if crawl.poll() is None:
            crawl.kill()
    return crawl.returncode, "".join(lines)


@pytest.mark.slow
def test_sigterm_flushes_every_item_before_exit(db_url: str) -> None:
    # A batch far larger than the crawl and a latency longer than it: nothing is written
    # before the signal, so only the flush on close can store the items.
    command = crawl_command(
        db_url,
        "-a",
        "count=100000",
        "-a",
        "delay=0.005",
        "-s",
        "DATABASE_BATCH_SIZE=100000",
        "-s",
        "DATABASE_BATCH_MAX_LATENCY=600",
    )
    # The crawl starts and yields items for a second or so.
    returncode, log = signalled_crawl(command, db_url, 1, [(1, signal.SIGTERM)])
    scraped = scraped_count(log)
    assert scraped > 0, log[-3000:]
    assert query(db_url, "SELECT count(*) FROM tracks") == [(scraped,)]
    assert returncode == 0, log[-3000:]


@pytest.mark.slow
def test_second_ctrl_c_spools_the_items_the_pipeline_held(tmp_path: Path) -> None:
    """The first Ctrl-C waits for a download that never ends and makes the pipeline write
    what it holds, to a database that accepts connections and never answers; the second,
    within the pipeline's grace for that write, forces Scrapy out without closing the spider:
    the items must reach the spool file."""
    with closing(socket.create_server(("127.0.0.1", 0))) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        db_url = f"postgresql://nobody@127.0.0.1:{port}/none"
        command = crawl_command(
            db_url,
            "-a",
            "count=40",
            "-a",
            f"stall=http://127.0.0.1:{port}/",
            "-s",
            "DATABASE_BATCH_SIZE=100000",
            "-s",
            "DATABASE_BATCH_MAX_LATENCY=600",
            "-s",
            "DOWNLOAD_TIMEOUT=300",
            "-s",
            "ROBOTSTXT_OBEY=False",
            "-s",
            "CONCURRENT_REQUESTS=8",
            "-s",
            "CONCURRENT_REQUESTS_PER_DOMAIN=8",
            "-s",
            f"DATABASE_SPOOL_DIR={tmp_path}",
        )
        # The 40 items pass into the pipeline's buffer; then Ctrl-C, and again.
        returncode, log = signalled_crawl(
            command, db_url, 40, [(0, signal.SIGINT), (1, signal.SIGINT)]
        )
    assert "forcing unclean shutdown" in log, log[-3000:]
    assert returncode == 1, log[-3000:]
    spooled = list(tmp_path.glob("pipeline_feed-*.jsonl"))
    assert len(spooled) == 1, log[-3000:]
    lines = spooled[0].read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["track_name"] for line in lines) == sorted(
        f"Feed Song {n}" for n in range(40)
    )


def test_crawl_exits_non_zero_and_spools_when_the_database_is_gone(tmp_path: Path) -> None:
    url = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1"
    command = crawl_command(
        url,
        "-a",
        "count=7",
        "-s",
        "DATABASE_RETRY_TIMEOUT=0.5",
        "-s",
        f"DATABASE_SPOOL_DIR={tmp_path}",
    )
    crawl = subprocess.run(
        command, cwd=REPO_ROOT, env=crawl_env(url), capture_output=True, text=True, timeout=120
    )
    assert crawl.returncode == 1, crawl.stderr[-3000:]
    spooled = list(tmp_path.glob("pipeline_feed-*.jsonl"))
    assert len(spooled) == 1
    assert str(spooled[0].resolve()) in crawl.stderr
    lines = spooled[0].read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["track_name"] for line in lines] == [
        f"Feed Song {n}" for n in range(7)
    ]


class _Relay:
    """A fixed local address in front of a server whose port changes when it restarts."""

    def __init__(self) -> None:
        self.target_port = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.links: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """Drop every open connection, as a server going away does."""
        for link in self.links:
            with suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
        self.links.clear()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            self.links += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


@pytest.mark.slow
def test_database_restart_during_a_crawl_loses_nothing(monkeypatch, caplog, tmp_path) -> None:
    """A restart shorter than DATABASE_RETRY_TIMEOUT: the flush waits it out, nothing spooled."""
    state_dir = throwaway_state_dir("pipeline-restart")
    server = EmbeddedPostgres(state_dir)
    relay = _Relay()
    try:
        running = server.ensure_running()
        ensure_database(running.url("postgres"), "restart")
        migrations.upgrade(running.url("restart"))
        relay.target_port = running.port
        url = f"postgresql://postgres@127.0.0.1:{relay.port}/restart?connect_timeout=2"
        pipeline, crawler = make_pipeline(
            url,
            monkeypatch,
            DATABASE_BATCH_SIZE=10,
            DATABASE_RETRY_TIMEOUT=60,
            DATABASE_SPOOL_DIR=str(tmp_path),
        )

        def item(n: int) -> dict[str, Any]:
            return {"artist_name": "Restart", "track_name": f"Song {n}", "bpm": 100 + n % 50}

        async def restart() -> None:
            await asyncio.sleep(2)
            restarted = await asyncio.to_thread(server.ensure_running)
            relay.target_port = restarted.port

        async def crawl(pipeline: DatabasePipeline) -> None:
            await pipeline.open_spider()
            for n in range(25):
                await pipeline.process_item(item(n))
            await asyncio.to_thread(server.stop)
            relay.cut()
            restarting = asyncio.create_task(restart())
            # Flushes while the server is down are retried until it is back.
            for n in range(25, 75):
                await pipeline.process_item(item(n))
            await restarting
            await pipeline.close_spider()

        with caplog.at_level("WARNING"):
            asyncio.run(crawl(pipeline))
        # The outage was real: writes failed and were retried.
        assert "Database write failed" in caplog.text
        assert query(url, "SELECT count(*), count(DISTINCT title) FROM tracks") == [(75, 75)]
        assert crawler.stats.get_value("database/items_spooled") is None
        assert list(tmp_path.iterdir()) == []
        assert crawler.stats.get_value("database/items_stored") == 75
        with closing(connect(url)) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM track_lookup")
            assert cursor.fetchone() == (75,)
    finally:
        server.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


def test_an_outage_spools_batches_as_they_fill_then_storing_resumes(
    db_url: str, tmp_path: Path, monkeypatch
) -> None:
    """After one failed retry cycle, batches go to the spool at once (no retry per item, a
    bounded buffer); once the database answers the probe, batches are stored again."""
    relay = _Relay()
    relay.target_port = 9  # nothing listens: each connection is accepted, then dropped
    dsn = psycopg2.extensions.parse_dsn(db_url)
    real_port = int(dsn.get("port", 5432))
    url = psycopg2.extensions.make_dsn(db_url, host="127.0.0.1", port=relay.port)
    pipeline, crawler = make_pipeline(
        url,
        monkeypatch,
        DATABASE_BATCH_SIZE=5,
        DATABASE_RETRY_TIMEOUT=0.5,
        DATABASE_PROBE_INTERVAL=0.2,
        DATABASE_SPOOL_DIR=str(tmp_path),
    )
    items = [{"artist_name": "Outage", "track_name": f"Song {n}"} for n in range(20)]
    timings: list[float] = []

    async def crawl() -> None:
        await pipeline.open_spider()
        for item in items[:5]:
            await pipeline.process_item(item)  # the fifth waits for one whole retry cycle
        started = time.monotonic()
        for item in items[5:10]:
            await pipeline.process_item(item)  # spooled without waiting for the database
        timings.append(time.monotonic() - started)
        relay.target_port = real_port
        await asyncio.sleep(1.0)  # the probe finds the database again
        for item in items[10:]:
            await pipeline.process_item(item)
        await pipeline.close_spider()

    asyncio.run(crawl())
    assert timings[0] < 0.4
    assert spooled_lines(tmp_path) == items[:10]
    assert query(db_url, "SELECT title FROM tracks ORDER BY title") == sorted(
        (item["track_name"],) for item in items[10:]
    )
    assert crawler.stats.get_value("database/items_spooled") == 10
    assert crawler.stats.get_value("database/items_stored") == 10
    assert crawler.stats.get_value("database/items_held_max") <= 10


def test_close_does_not_wait_for_a_database_that_never_answers(tmp_path: Path, monkeypatch):
    """A server that accepts connections and never answers (no connect_timeout in the URL):
    the write hangs in the network, and close still returns within CLOSE_GRACE, with every
    item spooled."""
    with closing(socket.create_server(("127.0.0.1", 0))) as silent:
        url = f"postgresql://nobody@127.0.0.1:{silent.getsockname()[1]}/none"
        pipeline, crawler = make_pipeline(
            url, monkeypatch, DATABASE_BATCH_SIZE=3, DATABASE_SPOOL_DIR=str(tmp_path)
        )
        items = [{"artist_name": "Silent", "track_name": f"Song {n}"} for n in range(5)]
        closed_in: list[float] = []

        async def crawl() -> None:
            await pipeline.open_spider()
            for item in items[:2]:
                await pipeline.process_item(item)
            # The third fills a batch whose write hangs; the next two wait in the buffer.
            stuck = [asyncio.create_task(pipeline.process_item(item)) for item in items[2:]]
            await asyncio.sleep(1.0)
            started = time.monotonic()
            await pipeline.close_spider()
            closed_in.append(time.monotonic() - started)
            await asyncio.gather(*stuck)

        asyncio.run(crawl())
    assert closed_in[0] < CLOSE_GRACE + 2
    assert sorted(spooled_lines(tmp_path), key=lambda item: item["track_name"]) == items
    assert crawler.stats.get_value("database/items_spooled") == 5


def test_a_writer_error_is_no_outage(make_database, tmp_path: Path, monkeypatch, caplog):
    """A database without the schema makes every write fail with a programming error: that is
    not retried as an outage; the items go to a writer-error spool file and ERROR is logged."""
    url = make_database(upto="")
    pipeline, crawler = make_pipeline(
        url,
        monkeypatch,
        DATABASE_BATCH_SIZE=2,
        DATABASE_RETRY_TIMEOUT=30,
        DATABASE_SPOOL_DIR=str(tmp_path),
    )
    items = [{"artist_name": "Bug", "track_name": f"Song {n}"} for n in range(5)]
    started = time.monotonic()
    with caplog.at_level("WARNING"):
        run_items(pipeline, items)
    assert time.monotonic() - started < 10  # no 30 s retry cycle
    assert "Database write failed" not in caplog.text
    assert "the database writer failed" in caplog.text
    assert "UndefinedTable" in caplog.text or "does not exist" in caplog.text
    [spool] = tmp_path.glob("*.jsonl")
    assert spool.name.endswith("-writer-error.jsonl")
    assert spooled_lines(tmp_path) == items
    assert crawler.stats.get_value("database/items_spooled/writer_error") == 5


def test_a_writer_error_stops_the_crawl_and_keeps_its_items(make_database, tmp_path: Path):
    """Through ``scrapy crawl``: the defect is shown with its traceback, the crawl stops with
    its own finish reason and exit status 1, and every item scraped is in the spool."""
    url = make_database(upto="")
    command = crawl_command(
        url,
        "-a",
        "count=40",
        "-a",
        "delay=0.05",
        "-s",
        "DATABASE_BATCH_SIZE=5",
        "-s",
        f"DATABASE_SPOOL_DIR={tmp_path}",
    )
    crawl = subprocess.run(
        command, cwd=REPO_ROOT, env=crawl_env(url), capture_output=True, text=True, timeout=120
    )
    assert crawl.returncode == 1, crawl.stderr[-3000:]
    assert "'finish_reason': 'database_writer_error'" in crawl.stderr
    assert "Traceback" in crawl.stderr and "the database writer failed" in crawl.stderr
    [spool] = tmp_path.glob("*.jsonl")
    assert spool.name.endswith("-writer-error.jsonl")
    scraped = scraped_count(crawl.stderr)
    assert 5 <= scraped < 40  # stopped early
    assert len(spooled_lines(tmp_path)) == scraped


def test_closing_in_the_middle_of_a_long_retry_cycle_spools_at_once(tmp_path: Path, monkeypatch):
    """DATABASE_RETRY_TIMEOUT=60 and the database refusing: close stops the retrying."""
    url = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1"
    pipeline, crawler = make_pipeline(
        url,
        monkeypatch,
        DATABASE_BATCH_SIZE=3,
        DATABASE_RETRY_TIMEOUT=60,
        DATABASE_SPOOL_DIR=str(tmp_path),
    )
    items = [{"artist_name": "Retry", "track_name": f"Song {n}"} for n in range(5)]
    closed_in: list[float] = []

    async def crawl() -> None:
        await pipeline.open_spider()
        retrying = [asyncio.create_task(pipeline.process_item(item)) for item in items]
        await asyncio.sleep(1.0)
        started = time.monotonic()
        await pipeline.close_spider()
        closed_in.append(time.monotonic() - started)
        await asyncio.gather(*retrying)

    asyncio.run(crawl())
    assert closed_in[0] < 2
    assert spooled_lines(tmp_path) == items
    assert crawler.stats.get_value("database/items_spooled") == 5
