"""DatabasePipeline through Scrapy's pipeline interface, and the metrics it serves."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scrapers.db.server.connection import connect
from scrapers.db.write.locks import LOCK_BUCKETS, LOCK_CLASS
from scrapers.extensions.metrics_server import MetricsServer
from scrapers.pipelines.database_pipeline import DatabasePipeline
from scrapers.pipelines.outage import SPOOLED_STAT
from tests.project import project_crawler
from tests.serving import serving

PLAN_FIRST = {
    "track_name": "New Track",
    "artist_name": "Test Artist",
    "isrc": "USRC99999999",
    "spotify_id": "spotify_new",
}
PLAN_DUPLICATE = {
    "track_name": "New Track (Updated)",
    "artist_name": "Test Artist",
    "isrc": "USRC99999999",
    "bpm": 128,
}


def make_pipeline(
    db_url: str, monkeypatch: pytest.MonkeyPatch, **settings: Any
) -> tuple[DatabasePipeline, Any]:
    crawler = project_crawler(DATABASE_URL=db_url, **settings)
    return DatabasePipeline.from_crawler(crawler), crawler


def run_items(pipeline: DatabasePipeline, items: list[Any]) -> None:
    async def crawl() -> None:
        await pipeline.open_spider()
        for item in items:
            await pipeline.process_item(item, None)
        await pipeline.close_spider()

    asyncio.run(crawl())


def spooled_lines(directory: Path) -> list[dict[str, Any]]:
    """Every item in the spool files of ``directory``, oldest file first."""
    return [
        json.loads(line)
        for path in sorted(directory.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def query(url: str, statement: str) -> list[tuple]:
    with closing(connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute(statement)
        return cursor.fetchall()


@pytest.mark.parametrize("batch_size", [1, 500])
def test_plan_case_6_second_item_updates_the_same_track(
    db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, batch_size: int
) -> None:
    pipeline, crawler = make_pipeline(db_url, monkeypatch, DATABASE_BATCH_SIZE=batch_size)
    with caplog.at_level("DEBUG", logger="scrapers.db"):
        run_items(pipeline, [dict(PLAN_FIRST), dict(PLAN_DUPLICATE)])
    assert query(db_url, "SELECT count(*), max(bpm) FROM tracks WHERE isrc = 'USRC99999999'") == [
        (1, 128)
    ]
    assert query(db_url, "SELECT count(*) FROM tracks") == [(1,)]
    # "spotify_new" is not a Spotify track id: stored as NULL, its raw text kept.
    assert query(db_url, "SELECT spotify_id, metadata->'invalid' FROM tracks") == [
        (None, {"spotify_id": "spotify_new"})
    ]
    assert caplog.text.count("Upserted track via ISRC: USRC99999999") == 2
    assert crawler.stats.get_value("database/tracks_inserted") == 1
    assert crawler.stats.get_value("database/tracks_updated") == 1


def test_items_wait_at_most_the_maximum_latency(db_url: str, monkeypatch) -> None:
    pipeline, _ = make_pipeline(
        db_url, monkeypatch, DATABASE_BATCH_SIZE=1000, DATABASE_BATCH_MAX_LATENCY=0.2
    )

    async def crawl() -> list[tuple]:
        await pipeline.open_spider()
        await pipeline.process_item({"artist_name": "A", "track_name": "Early"})
        await asyncio.sleep(1.0)
        stored = await asyncio.to_thread(query, db_url, "SELECT title FROM tracks")
        await pipeline.close_spider()
        return stored

    assert asyncio.run(crawl()) == [("Early",)]


def test_writes_behind_a_bulk_load_are_logged_and_stored_when_it_ends(
    db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, _ = make_pipeline(db_url, monkeypatch, DATABASE_BATCH_SIZE=1)
    with closing(connect(db_url)) as holder, holder.cursor() as cursor:
        # What a bulk load holds until it commits: every writer's lock bucket.
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(%s, b)) FROM generate_series(0, %s) AS b",
            (LOCK_CLASS, LOCK_BUCKETS - 1),
        )

        async def crawl() -> None:
            await pipeline.open_spider()
            writing = asyncio.ensure_future(
                pipeline.process_item({"artist_name": "A", "track_name": "Behind"})
            )
            while "Database writes waiting" not in caplog.text:
                await asyncio.sleep(0.1)
            await asyncio.to_thread(holder.rollback)
            await writing
            await pipeline.close_spider()

        with caplog.at_level("WARNING", logger="scrapers.pipelines.database_pipeline"):
            asyncio.run(asyncio.wait_for(crawl(), timeout=60))
    assert "for the catalogue's locks: 1 other session(s) hold them" in caplog.text
    assert query(db_url, "SELECT title FROM tracks") == [("Behind",)]


@pytest.mark.parametrize(
    ("waits", "logged"),
    [
        ([1.0, 2.0, 5.0, 10.9, 11.0, 12.0], [1.0, 11.0]),  # one long wait: every 10 s
        ([1.0, 2.0, 1.0, 2.0], [1.0, 1.0]),  # a second wait is said at once
    ],
)
def test_a_lock_wait_is_logged_at_once_then_every_ten_seconds(
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    waits: list[float],
    logged: list[float],
) -> None:
    pipeline, _ = make_pipeline(db_url, monkeypatch)
    with caplog.at_level("WARNING", logger="scrapers.pipelines.database_pipeline"):
        for seconds in waits:
            pipeline._lock_wait(seconds, 1)
    assert [r.args[1] for r in caplog.records] == logged


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_counters_are_served_over_http_during_the_crawl(db_url: str, monkeypatch) -> None:
    pipeline, crawler = make_pipeline(db_url, monkeypatch, PROMETHEUS_PORT=0)
    server = MetricsServer.from_crawler(crawler)
    server.spider_opened(None)
    try:
        assert server.url is not None and server.url.startswith("http://127.0.0.1:")
        before = scrape(server.url)
        run_items(
            pipeline,
            [
                {"artist_name": "A", "track_name": "One", "isrc": "GBAYE0000001"},
                {"artist_name": "B", "track_name": "Two", "spotify_id": "4uLU6hMCjMI75M1A2tKUQC"},
                {"artist_name": "C", "track_name": "Three"},
                {"artist_name": "C", "track_name": "Three", "bpm": 120},
                {"artist_name": "D"},
            ],
        )
        after = scrape(server.url)
    finally:
        server.spider_closed(None)

    def grew(name: str, **labels: str) -> float:
        key = name + json.dumps(labels, sort_keys=True)
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("tracks_upsert_isrc_total") == 1
    assert grew("tracks_upsert_spotify_total") == 1
    assert grew("tracks_upsert_title_total") == 2
    assert grew("tracks_written_total", result="inserted") == 3
    assert grew("tracks_written_total", result="updated") == 1
    assert grew("items_rejected_total", reason="missing_title") == 1
    assert grew("batch_flush_seconds_count") == 1
    assert server.server is None


class _Pushgateway(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def pushgateway() -> Iterator[tuple[str, list]]:
    _Pushgateway.received = []
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), _Pushgateway)) as server:
        yield f"http://127.0.0.1:{server.server_port}", _Pushgateway.received


def test_metrics_are_pushed_to_the_pushgateway_at_the_end(db_url, monkeypatch, pushgateway):
    url, received = pushgateway
    pipeline, crawler = make_pipeline(
        db_url,
        monkeypatch,
        PROMETHEUS_PORT=0,
        PROMETHEUS_PUSHGATEWAY_URL=url,
        PROMETHEUS_JOB="nightly_import",
    )
    server = MetricsServer.from_crawler(crawler)
    server.spider_opened(None)
    run_items(pipeline, [{"artist_name": "A", "track_name": "Pushed", "isrc": "GBAYE0000002"}])
    server.spider_closed(None)
    assert [(method, path) for method, path, _ in received] == [
        ("PUT", "/metrics/job/nightly_import")
    ]
    assert b"tracks_upsert_isrc_total" in received[0][2]


def test_unreachable_database_spools_items_as_jsonl(tmp_path: Path, monkeypatch) -> None:
    # Nothing listens on port 9 of 127.0.0.1 (discard): every attempt fails at once.
    url = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1"
    pipeline, crawler = make_pipeline(
        url, monkeypatch, DATABASE_RETRY_TIMEOUT=0.3, DATABASE_SPOOL_DIR=str(tmp_path)
    )
    items = [dict(PLAN_FIRST), dict(PLAN_DUPLICATE), {"artist_name": "B", "track_name": "x"}]
    run_items(pipeline, items)
    assert crawler.stats.get_value(SPOOLED_STAT) == 3
    assert pipeline.spool_path is not None and pipeline.spool_path.parent == tmp_path
    lines = pipeline.spool_path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == items


def test_closing_during_a_timed_flush_loses_nothing(tmp_path: Path, monkeypatch) -> None:
    url = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1"
    pipeline, crawler = make_pipeline(
        url,
        monkeypatch,
        DATABASE_BATCH_MAX_LATENCY=0.1,
        DATABASE_RETRY_TIMEOUT=1.0,
        DATABASE_SPOOL_DIR=str(tmp_path),
    )
    items = [{"artist_name": "A", "track_name": f"Timed {n}"} for n in range(3)]

    async def crawl() -> None:
        await pipeline.open_spider()
        for item in items:
            await pipeline.process_item(item)
        await asyncio.sleep(0.3)  # the timed flush is now retrying the unreachable database
        await pipeline.close_spider()

    asyncio.run(crawl())
    assert crawler.stats.get_value(SPOOLED_STAT) == 3
    assert pipeline.spool_path is not None
    spooled = pipeline.spool_path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in spooled] == items
