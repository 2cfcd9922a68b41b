"""A Redis reply lost after Redis did the command must never lose a request of the shared crawl.

redis-py sends a command again when its connection fails (10 times by default), and a worker
tries again after an outage. When Redis had done the command (killed after writing its
append-only file and before replying, a network cut, a reply slower than the socket timeout),
the second try must find what the first did: the same request popped, the request queued.
``LosingProxy`` stands between the worker and a private Redis and loses those replies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from scrapy import Request

from scrapers.crawl.frontier import UNQUEUED_STAT, FrontierScheduler
from scrapers.spiders.tracklists_1001 import TracklistsSpider
from tests.project import project_crawler
from tests.redis_process import RedisProcess
from tests.redis_proxy import LosingProxy
from tests.sitegen import GeneratedSite
from tests.test_shared_frontier import (
    TRACKLISTS,
    assert_catalogue_complete,
    start_worker,
)
from tests.test_shared_frontier import site as site

URLS = [f"https://www.1001tracklists.com/tracklist/{n}/set.html" for n in range(20)]


@pytest.fixture
def proxy(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LosingProxy]:
    """Every command's first reply lost, or every ``request.param``-th one's."""
    server = RedisProcess(tmp_path / "redis", persistent=False).start()
    with LosingProxy("127.0.0.1", server.port, getattr(request, "param", 1)) as losing:
        yield losing
    server.kill()


def open_scheduler(url: str, **settings: Any) -> FrontierScheduler:
    """A worker's scheduler on the shared frontier at ``url``, as ``scrapy crawl`` opens it."""
    crawler = project_crawler(TracklistsSpider, REDIS_URL=url, FRONTIER_NAME="lost", **settings)
    crawler.spider = TracklistsSpider.from_crawler(crawler)
    scheduler = FrontierScheduler.from_crawler(crawler)
    asyncio.run(scheduler._open(crawler.spider))
    assert scheduler.built
    # Redis knows the pop's script from now on: a lost "unknown script" reply would be a pop
    # that Redis did not do.
    assert scheduler.next_request() is None
    return scheduler


def pop_all(scheduler: FrontierScheduler) -> list[str]:
    popped = []
    while (request := scheduler.next_request()) is not None:
        popped.append(request.url)
    return popped


def test_a_push_whose_reply_is_lost_is_queued_once(proxy: LosingProxy) -> None:
    """The retried SADD of scrapy-redis's duplicate filter answered "seen": the request was
    dropped as a duplicate of itself, and never crawled."""
    scheduler = open_scheduler(proxy.url)
    proxy.losing = True
    for url in URLS:
        scheduler.enqueue_request(Request(url))
    proxy.losing = False
    assert sorted(pop_all(scheduler)) == sorted(URLS)
    assert proxy.lost >= len(URLS)
    assert scheduler.enqueue_request(Request(URLS[0])) is False  # still a duplicate filter


def test_a_pop_whose_reply_is_lost_gives_the_same_request_again(proxy: LosingProxy) -> None:
    """scrapy-redis's MULTI/EXEC pop, retried, popped a second request: the first was never
    crawled, its fingerprint already in the duplicate filter."""
    scheduler = open_scheduler(proxy.url)
    for url in URLS:
        assert scheduler.enqueue_request(Request(url))
    proxy.losing = True
    popped = pop_all(scheduler)
    assert sorted(popped) == sorted(URLS)
    assert proxy.lost >= len(URLS)


def test_a_pop_tried_again_after_an_outage_gives_the_same_request(proxy: LosingProxy) -> None:
    """redis-py gave up (Redis stayed down), so the scheduler asks again once Redis is back:
    the request Redis had popped before it went away comes back, not the next one."""
    scheduler = open_scheduler(proxy.url, REDIS_PARAMS={"retry": Retry(NoBackoff(), 0)})
    for url in URLS[:3]:
        assert scheduler.enqueue_request(Request(url))
    proxy.losing = True
    assert scheduler.next_request() is None  # done by Redis, its answer lost: an outage
    assert scheduler.outage.since is not None
    proxy.losing = False
    assert sorted(pop_all(scheduler)) == sorted(URLS[:3])


def test_a_worker_whose_last_pop_went_unanswered_is_not_idle(proxy: LosingProxy) -> None:
    """Redis popped the last queued request and the answer was lost: the queue is empty, and a
    worker that counted only the queue went idle and could leave the run with that request in
    its slot, never crawled."""
    scheduler = open_scheduler(proxy.url, REDIS_PARAMS={"retry": Retry(NoBackoff(), 0)})
    assert scheduler.enqueue_request(Request(URLS[0]))
    proxy.losing = True
    assert scheduler.next_request() is None
    proxy.losing = False
    assert scheduler.has_pending_requests()
    assert pop_all(scheduler) == URLS[:1]
    assert not scheduler.has_pending_requests()


def test_a_worker_leaving_with_its_last_pop_unanswered_puts_the_request_back(
    proxy: LosingProxy,
) -> None:
    """Stopped (SIGTERM) while the answer to its pop was lost, the worker left the request in its
    slot: no other worker would ever take it."""
    scheduler = open_scheduler(proxy.url, REDIS_PARAMS={"retry": Retry(NoBackoff(), 0)})
    assert scheduler.enqueue_request(Request(URLS[0]))
    proxy.losing = True
    assert scheduler.next_request() is None
    proxy.losing = False
    scheduler.close("shutdown")
    assert not scheduler.stats.get_value(UNQUEUED_STAT)
    assert redis.Redis.from_url(proxy.url).zcard("lost:requests") == 1  # for another worker


@pytest.mark.slow
@pytest.mark.parametrize("proxy", [4], indirect=True)
def test_workers_whose_redis_replies_are_lost_complete_the_catalogue(
    site: GeneratedSite,
    db_url: str,
    db: Any,
    tmp_path: Path,
    proxy: LosingProxy,
) -> None:
    """One command in four has its first reply lost (Redis did it), for the whole crawl of two
    workers: each retry must find what the first try did, and the crawl completes, exit 0.
    Before, both workers exited 0 with none of the 200 tracklists stored."""
    proxy.losing = True
    workers = [start_worker(db_url, proxy.url, "replies", site, tmp_path) for _ in range(2)]
    for worker in workers:
        worker.wait(timeout=300)
        assert worker.status == 0, worker.err[-3000:]
        assert "Traceback" not in worker.err
    assert_catalogue_complete(db, site)
    assert proxy.lost > TRACKLISTS // 2
