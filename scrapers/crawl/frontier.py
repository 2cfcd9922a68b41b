"""Several crawl workers sharing one frontier on Redis (scrapy-redis), politely.

With ``REDIS_URL`` set (scrapy-redis's own setting), every ``scrapy crawl 1001tracklists``
process with the same ``FRONTIER_NAME`` shares:

- the request queue and the duplicate filter (scrapy-redis's scheduler, with the default
  priority queue and ``SCHEDULER_PERSIST = True``: with ``False`` the first worker to finish
  deletes the queue while others still crawl);
- the site's politeness (``GlobalPoliteness``): all workers together have one request out
  to a site at a time and wait ``DOWNLOAD_DELAY`` seconds after its answer before the next,
  and a block page seen by one makes all of them back off. The limiter in Redis keeps the
  delay, so each worker's own download slot no longer waits (``DOWNLOAD_DELAY`` and
  AutoThrottle are turned off per worker);
- a list of live workers (heartbeats). The last worker to leave a finished crawl (empty queue,
  no other live worker) deletes the duplicate filter, so the next run walks the listings again
  and finds whatever a killed worker lost: "known" means "stored", not "seen".

A worker closes after ``MAX_IDLE_TIME_BEFORE_CLOSE`` seconds with nothing to do (scrapy-redis
counts that from process start; ``FrontierSpider`` counts it from the worker's last response).
``scrapy frontier show|clear`` (``scrapers.commands.frontier``) reads and clears the shared state.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
import uuid
from typing import Any

import redis
import redis.asyncio
from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.settings import BaseSettings
from scrapy_redis.spiders import RedisSpider

from scrapers.redis_url import check_redis_url, redis_error
from scrapers.settings_check import InvalidSetting, seconds

logger = logging.getLogger(__name__)

POLITENESS_MIDDLEWARE = "scrapers.crawl.frontier.GlobalPoliteness"
POLITENESS_PRIORITY = 950  # nearest the downloader: the wait ends right before the request leaves
BACKOFF_SIGNAL = object()  # sent by the block-page middleware with ``delay=`` seconds
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
DEFAULTS = {
    "MAX_IDLE_TIME_BEFORE_CLOSE": 60,
    "FRONTIER_HEARTBEAT": 2.0,
    "FRONTIER_WORKER_TIMEOUT": 30.0,
    "FRONTIER_TURN_TIMEOUT": 60.0,
}

# Take the site's turn: nobody else's request is out, and the site's next free moment has come.
# Redis's clock is the one clock every worker shares. The worker that had the last turn waits a
# little longer (ARGV[4] s), so that workers polling for it get their share. Returns 0 (taken),
# -1 (another request is out) or the seconds until the free moment.
_TAKE_TURN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if redis.call('EXISTS', KEYS[2]) == 1 then return '-1' end
local free = tonumber(redis.call('GET', KEYS[1]) or '0')
if redis.call('GET', KEYS[3]) == ARGV[3] then free = free + tonumber(ARGV[4]) end
if now < free then return string.format('%.6f', free - now) end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[2])
return '0'
"""
# End a turn (its answer came, or it failed) or back off: the next request waits ARGV[1] s.
_PUSH_FREE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
local free = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now + tonumber(ARGV[1]))
redis.call('SET', KEYS[1], string.format('%.6f', free), 'EX', ARGV[3])
return string.format('%.6f', free - now)
"""
_TURN_META = "frontier_turn"  # request.meta: the token of the turn this request holds
_POLL = 0.05  # seconds between tries while another worker's request is out


def enabled(settings: BaseSettings) -> bool:
    return bool(settings.get("REDIS_URL"))


def frontier_name(settings: BaseSettings, spider_name: str) -> str:
    name = settings.get("FRONTIER_NAME") or spider_name
    if not _NAME.match(name):
        raise InvalidSetting("FRONTIER_NAME", "letters, digits and ._- only", name)
    return name


class RedisUnavailable(RuntimeError):
    """The shared frontier's Redis does not answer. The message names its host, never a
    password; ``scrapy crawl`` answers it with one line and exit status 2."""


def check_redis(url: str) -> None:
    """Refuse to start a worker whose Redis does not answer, before anything is crawled."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError) as error:
        raise RedisUnavailable(
            f"the shared frontier's Redis (REDIS_URL) does not answer: {redis_error(error, url)}"
        ) from None


def keys(name: str) -> dict[str, str]:
    """Every Redis key of one crawl's shared state (the politeness keys add ``:<host>``)."""
    return {
        "requests": f"{name}:requests",
        "dupefilter": f"{name}:dupefilter",
        "workers": f"{name}:workers",
        "politeness": f"{name}:politeness",
        "start_urls": f"{name}:start_urls",
    }


def configure(settings: BaseSettings, spider_name: str) -> None:
    """Turn a worker's settings into a shared-frontier worker's, when ``REDIS_URL`` is set.

    Set at "cmdline" priority: ``-s DOWNLOAD_DELAY=…`` must become the shared delay, not a
    per-worker wait on top of it.
    """
    if not enabled(settings):
        return
    check_redis_url(settings["REDIS_URL"])
    if settings.getbool("SCHEDULER_FLUSH_ON_START"):
        raise InvalidSetting(
            "SCHEDULER_FLUSH_ON_START",
            "off with a shared frontier (it empties the queue of every running worker; use"
            " `scrapy frontier clear`)",
            settings.get("SCHEDULER_FLUSH_ON_START"),
        )
    jobdir = settings.get("JOBDIR")
    if jobdir:
        raise InvalidSetting(
            "JOBDIR", "unset with REDIS_URL (the shared frontier persists the queue)", jobdir
        )
    if settings.getint("SCHEDULER_IDLE_BEFORE_CLOSE"):
        raise InvalidSetting(
            "SCHEDULER_IDLE_BEFORE_CLOSE",
            "unset (it blocks the event loop)",
            settings.get("SCHEDULER_IDLE_BEFORE_CLOSE"),
        )
    name = frontier_name(settings, spider_name)
    names = keys(name)
    delay = seconds("DOWNLOAD_DELAY", settings.get("DOWNLOAD_DELAY"), allow_zero=True)
    for setting, value in {
        "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
        "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
        "SCHEDULER_PERSIST": True,
        "SCHEDULER_QUEUE_KEY": names["requests"],
        "SCHEDULER_DUPEFILTER_KEY": names["dupefilter"],
        "REDIS_START_URLS_KEY": names["start_urls"],
        "FRONTIER_NAME": name,
        "FRONTIER_DOWNLOAD_DELAY": delay,
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": False,
    }.items():
        settings.set(setting, value, priority="cmdline")
    for setting, value in DEFAULTS.items():
        settings.setdefault(setting, value)
        seconds(setting, settings.get(setting))  # refused here, before anything starts
    middlewares = settings.getdict("DOWNLOADER_MIDDLEWARES")
    middlewares.setdefault(POLITENESS_MIDDLEWARE, POLITENESS_PRIORITY)
    settings.set("DOWNLOADER_MIDDLEWARES", middlewares, priority="cmdline")


class FrontierSpider(RedisSpider):
    """scrapy-redis's ``RedisSpider``, used only when ``REDIS_URL`` is set.

    The subclass seeds from its own ``async def start()`` (scrapy-redis's ``start_requests()``
    is never called since Scrapy 2.16). Idle time is counted from the last response, and the
    worker keeps a heartbeat in Redis so that the last one out can finish the crawl.
    """

    worker_id = ""

    def setup_redis(self, crawler: Crawler | None = None) -> None:
        crawler = crawler or self.crawler
        if not enabled(crawler.settings):
            return
        check_redis(crawler.settings["REDIS_URL"])
        super().setup_redis(crawler)
        settings = crawler.settings
        self.spider_idle_start_time = int(time.time())
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._keys = keys(settings["FRONTIER_NAME"])
        self._heartbeat = settings.getfloat("FRONTIER_HEARTBEAT")
        self._worker_timeout = settings.getfloat("FRONTIER_WORKER_TIMEOUT")
        self._beating: asyncio.Task[None] | None = None
        crawler.signals.connect(self._active, signal=signals.response_received)
        crawler.signals.connect(self._opened, signal=signals.spider_opened)
        crawler.signals.connect(self._closed, signal=signals.spider_closed)

    def _active(self) -> None:
        self.spider_idle_start_time = int(time.time())

    def _beat(self) -> None:
        self.server.hset(self._keys["workers"], self.worker_id, f"{time.time():.3f}")

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.get_running_loop().run_in_executor(None, self._beat)
            await asyncio.sleep(self._heartbeat)

    def _opened(self) -> None:
        self._beat()
        self._beating = asyncio.get_running_loop().create_task(self._beat_forever())
        self.logger.info("Worker %s joined frontier %s", self.worker_id, self._keys["requests"])

    def _closed(self, reason: str) -> None:
        if self._beating is not None:
            self._beating.cancel()
        self.server.hdel(self._keys["workers"], self.worker_id)
        others = live_workers(self.server, self._keys["workers"], self._worker_timeout)
        queued = self.server.zcard(self._keys["requests"])
        if reason == "finished" and not queued and not others:
            self.server.delete(self._keys["dupefilter"])
            self.logger.info("Last worker of a finished crawl: duplicate filter cleared")


def live_workers(server: redis.Redis, key: str, timeout: float) -> dict[str, float]:
    """Workers whose heartbeat is younger than ``timeout`` seconds, with its age."""
    now = time.time()
    ages = {}
    for worker, beat in server.hgetall(key).items():
        name = worker.decode() if isinstance(worker, bytes) else worker
        age = now - float(beat)
        if age < timeout:
            ages[name] = age
    return ages


class GlobalPoliteness:
    """Downloader middleware: a site gets one request at a time from all workers together,
    and the next one ``FRONTIER_DOWNLOAD_DELAY`` seconds after the last answer came.

    Spacing turns from the answer, not from the send, so that no network or scheduling delay
    on one worker can bring two requests closer than the delay at the site. A block page's
    backoff pushes the site's next free moment for every worker. A turn left by a killed worker
    expires after ``FRONTIER_TURN_TIMEOUT`` seconds. Turns go round: the worker that had the last
    one waits ``_POLL`` seconds more, or it would win every time (it asks the moment it is done).
    """

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        self.delay = settings.getfloat("FRONTIER_DOWNLOAD_DELAY")
        self.turn_ms = int(1000 * settings.getfloat("FRONTIER_TURN_TIMEOUT"))
        self.prefix = keys(settings["FRONTIER_NAME"])["politeness"]
        self.worker = uuid.uuid4().hex
        self.client = redis.asyncio.Redis.from_url(settings["REDIS_URL"])
        self.take_turn = self.client.register_script(_TAKE_TURN)
        self.push_free = self.client.register_script(_PUSH_FREE)
        self.pending: set[asyncio.Task[Any]] = set()  # backoffs being sent: keep a reference
        crawler.signals.connect(self.back_off, signal=BACKOFF_SIGNAL)
        crawler.signals.connect(self.close, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> GlobalPoliteness:
        if not enabled(crawler.settings):
            raise NotConfigured("REDIS_URL is not set")
        return cls(crawler)

    def _keys(self, request: Request) -> list[str]:
        site = f"{self.prefix}:{request.url.split('/')[2].lower()}"
        return [site, f"{site}:turn", f"{site}:last"]

    async def process_request(self, request: Request) -> None:
        """Wait for this request's turn at its site."""
        if request.url.startswith("file:"):
            return
        token = uuid.uuid4().hex
        grace = min(_POLL, self.delay)
        arguments = [token, self.turn_ms, self.worker, grace]
        while True:
            answer = float(await self.take_turn(keys=self._keys(request), args=arguments))
            if answer == 0:
                request.meta[_TURN_META] = token
                return
            await asyncio.sleep(_POLL if answer < 0 else answer)

    async def process_response(self, request: Request, response: Response) -> Response:
        await self._end_turn(request)
        return response

    async def process_exception(self, request: Request, exception: Exception) -> None:
        await self._end_turn(request)

    async def _end_turn(self, request: Request) -> None:
        token = request.meta.pop(_TURN_META, None)
        if token is not None:
            ttl = int(self.delay) + 3600
            await self.push_free(keys=self._keys(request), args=[self.delay, token, ttl])

    def back_off(self, request: Request, delay: float) -> None:
        """A block page: push the site's next free moment ``delay`` seconds away for all."""
        task = asyncio.get_running_loop().create_task(
            self.push_free(keys=self._keys(request), args=[delay, "", int(delay) + 3600])
        )
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def close(self) -> None:
        await self.client.aclose()
