"""Several crawl workers sharing one frontier on Redis (scrapy-redis), politely.

With ``REDIS_URL`` set (the environment, or ``-s``), every ``scrapy crawl 1001tracklists``
process with the same ``FRONTIER_NAME`` shares:

- the request queue and the duplicate filter (scrapy-redis's scheduler and priority queue, with
  ``SCHEDULER_PERSIST = True``: with ``False`` the first worker to finish deletes the queue
  while others still crawl). Its push and pop are scripts safe to send again after a lost reply
  (``scrapers.crawl.frontier_queue``);
- the site's politeness (``GlobalPoliteness``): all workers together have one request out
  to a site at a time and wait ``DOWNLOAD_DELAY`` seconds after its answer before the next,
  and a block page seen by one makes all of them back off. The limiter in Redis keeps the
  delay, so each worker's own download slot no longer waits (``DOWNLOAD_DELAY`` and
  AutoThrottle are turned off per worker);
- a list of live workers (heartbeats, from a thread of their own so that a busy event loop
  cannot make a live worker look dead) and the crawl's *generation*, a key written when a run
  starts. "Known" means "stored", not "seen": a worker that starts when no other is live starts
  a new run and clears the duplicate filter of the last one, which may hold requests that a
  killed worker took and never finished; the incremental lookup keeps the walk cheap.

How a run ends honestly (a close reason in ``INCOMPLETE_REASONS`` makes ``scrapy crawl`` exit 1):

- a worker idle for ``MAX_IDLE_TIME_BEFORE_CLOSE`` seconds (counted from its last response)
  leaves once the queue is empty and every other live worker is idle too; the last one out
  clears the duplicate filter. If a worker died meanwhile (its heartbeat older than
  ``FRONTIER_WORKER_TIMEOUT``), the requests it held are lost to this run: the workers leave
  with ``frontier_workers_lost``;
- a Redis that lost its data (restarted without persistence, or ``scrapy frontier clear``)
  no longer holds the generation: the workers leave with ``frontier_lost``;
- a Redis restarted while it does not keep every write it acknowledged (``frontier_restarts``)
  may have lost requests: each worker that saw it crawls on and exits 1;
- a Redis error is an outage each worker rides out (``RedisOutage``): requests wait for their
  turn, new ones are held in memory, the heartbeat resumes. One WARNING per
  ``OUTAGE_WARNING_INTERVAL``; after ``FRONTIER_REDIS_OUTAGE_TIMEOUT`` seconds the worker
  leaves with ``frontier_unavailable``, every page it fetched stored. The same holds at start-up,
  once Redis answered the worker's first check (``ride_out_start_up``).

In each case running the same command again completes the crawl. ``scrapy frontier
show|clear`` (``scrapers.commands.frontier``) reads and clears the shared state.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

import redis
import redis.asyncio
from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import CloseSpider, DontCloseSpider, IgnoreRequest, NotConfigured
from scrapy.http import Response
from scrapy.settings import BaseSettings
from scrapy.utils.defer import deferred_from_coro
from scrapy_redis.scheduler import Scheduler
from scrapy_redis.spiders import RedisSpider
from twisted.internet.defer import Deferred

from scrapers.crawl.frontier_queue import QUEUE_CLASS, slot_fields
from scrapers.crawl.frontier_restarts import RESTARTED_STAT, RedisRestarts
from scrapers.redis_url import check_redis_url, redis_error
from scrapers.settings_check import InvalidSetting, seconds

logger = logging.getLogger(__name__)
T = TypeVar("T")

POLITENESS_MIDDLEWARE = "scrapers.crawl.frontier.GlobalPoliteness"
POLITENESS_PRIORITY = 950  # nearest the downloader: the wait ends right before the request leaves
BACKOFF_SIGNAL = object()  # sent by the block-page middleware with ``delay=`` seconds
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
DEFAULTS = {
    "MAX_IDLE_TIME_BEFORE_CLOSE": 60,
    "FRONTIER_HEARTBEAT": 2.0,
    "FRONTIER_WORKER_TIMEOUT": 30.0,
    "FRONTIER_TURN_TIMEOUT": 60.0,
    "FRONTIER_REDIS_OUTAGE_TIMEOUT": 300.0,
}
# Close reasons of a worker whose run ended short; ``scrapy crawl`` exits 1 for each.
LOST_REASON = "frontier_lost"  # Redis no longer holds this run's frontier
WORKERS_LOST_REASON = "frontier_workers_lost"  # a worker died holding requests
UNAVAILABLE_REASON = "frontier_unavailable"  # Redis did not answer for the outage timeout
INCOMPLETE_REASONS = frozenset({LOST_REASON, WORKERS_LOST_REASON, UNAVAILABLE_REASON})
# Stats of a worker that left its run unfinished whatever its close reason; ``scrapy crawl``
# exits 1 for each: requests found in an outage and never queued, requests left queued by the
# last live worker stopped by SIGTERM or Ctrl-C (-1: Redis could not tell), and restarts of a
# Redis that may have lost acknowledged writes (``frontier_restarts``).
UNQUEUED_STAT = "frontier/requests_unqueued"
LEFT_QUEUED_STAT = "frontier/requests_left_queued"
INCOMPLETE_STATS = (UNQUEUED_STAT, LEFT_QUEUED_STAT, RESTARTED_STAT)
RUN_AGAIN = "the crawl is incomplete: run the same command again to complete it"
OUTAGE_WARNING_INTERVAL = 10.0  # seconds between the WARNINGs of one outage
_OUTAGE_RETRY = 1.0  # seconds between a waiting request's tries while Redis does not answer
# Every Redis call of a worker runs on the event loop or the heartbeat thread: never wait long.
REDIS_PARAMS = {"socket_timeout": 5, "socket_connect_timeout": 5}

# A worker joins the crawl. With no live worker this is a new run: the duplicate filter and the
# idle marks of the last run are dropped and a new generation is written. Returns the
# generation and 1 for a new run. KEYS: workers, idle, dupefilter, generation, taken.
# ARGV: worker, worker timeout, a new generation.
_JOIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local beats = redis.call('HGETALL', KEYS[1])
local live = false
for i = 2, #beats, 2 do
  if now - tonumber(beats[i]) < tonumber(ARGV[2]) then live = true end
end
local generation = redis.call('GET', KEYS[4])
if not live or not generation then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[5])
  generation = ARGV[3]
  redis.call('SET', KEYS[4], generation)
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.6f', now))
return {generation, live and 0 or 1}
"""
JOIN_KEYS = ("workers", "idle", "dupefilter", "generation", "taken")
# A heartbeat on Redis's clock, only while the generation is this worker's: 0 means the
# frontier it works on is gone. KEYS: workers, idle, generation. ARGV: worker, generation,
# 1 when the worker is idle past MAX_IDLE_TIME_BEFORE_CLOSE.
_BEAT = """
if redis.call('GET', KEYS[3]) ~= ARGV[2] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.6f', now))
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[2], ARGV[1], '1')
else
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return 1
"""
# An idle worker asks to leave: 'lost' (not this worker's generation), 'wait' (requests queued,
# or another live worker is busy), else it leaves: 'short' when a worker died (heartbeat older
# than the timeout) and 'finished' otherwise; the last one out clears the run's state.
# The worker's slot of its last pop goes too (``frontier_queue``).
# KEYS: workers, idle, requests, dupefilter, generation, taken. ARGV: worker, timeout, generation.
_LEAVE = """
if redis.call('GET', KEYS[5]) ~= ARGV[3] then return 'lost' end
redis.call('HSET', KEYS[2], ARGV[1], '1')
if redis.call('ZCARD', KEYS[3]) > 0 then return 'wait' end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local beats = redis.call('HGETALL', KEYS[1])
local live, dead = 0, 0
for i = 1, #beats, 2 do
  if beats[i] ~= ARGV[1] then
    if now - tonumber(beats[i + 1]) >= tonumber(ARGV[2]) then
      dead = dead + 1
    elseif redis.call('HEXISTS', KEYS[2], beats[i]) == 0 then
      return 'wait'
    else
      live = live + 1
    end
  end
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[6], ARGV[1], ARGV[1] .. ':request')
if live == 0 then redis.call('DEL', KEYS[1], KEYS[2], KEYS[4], KEYS[6]) end
if dead > 0 then return 'short' end
return 'finished'
"""
LEAVE_KEYS = ("workers", "idle", "requests", "dupefilter", "generation", "taken")

# Take the site's turn: nobody else's request is out, and the site's next free moment has come.
# Redis's clock is the one clock every worker shares. The worker that had the last turn waits a
# little longer (ARGV[4] s), so that workers polling for it get their share. Returns 0 (taken,
# also when the turn out is this request's own: a second try after a lost answer), -1 (another
# request is out) or the seconds until the free moment.
_TAKE_TURN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = redis.call('GET', KEYS[2])
if out == ARGV[1] then return '0' end
if out then return '-1' end
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
        "idle": f"{name}:idle",
        "generation": f"{name}:generation",
        "taken": f"{name}:taken",
        "politeness": f"{name}:politeness",
        "start_urls": f"{name}:start_urls",
    }


class RedisOutage:
    """The Redis errors one worker met, ridden out for ``timeout`` seconds.

    Every component that talks to Redis reports here: ``failed`` on an error, ``answered`` on a
    success. The outage is logged once when it starts, then once per
    ``OUTAGE_WARNING_INTERVAL`` seconds, without tracebacks; when it has lasted ``timeout``
    seconds, ``give_up`` is called once (the worker then leaves). Thread-safe: the heartbeat
    thread reports here too.
    """

    def __init__(
        self,
        timeout: float,
        give_up: Callable[[], None],
        url: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.give_up = give_up
        self.url = url
        self.clock = clock
        self.since: float | None = None
        self.ended = float("-inf")  # when the last outage ended
        self.gave_up = False
        self.outages = 0
        self._warned = float("-inf")
        self._lock = threading.Lock()

    def failed(self, where: str, error: Exception) -> None:
        with self._lock:
            now = self.clock()
            if self.since is None:
                self.since = now
                self.outages += 1
            lasted = now - self.since
            if now - self._warned >= OUTAGE_WARNING_INTERVAL:
                self._warned = now
                logger.warning(
                    "The shared frontier's Redis has not answered for %.0f s (%s: %s); waiting"
                    " up to %g s (FRONTIER_REDIS_OUTAGE_TIMEOUT)",
                    lasted, where, redis_error(error, self.url), self.timeout,
                )  # fmt: skip
            expired = lasted >= self.timeout and not self.gave_up
            self.gave_up = self.gave_up or expired
        if expired:
            logger.error(
                "The shared frontier's Redis did not answer for %g s: this worker stops; %s",
                self.timeout, RUN_AGAIN,
            )  # fmt: skip
            self.give_up()

    def answered(self) -> None:
        if self.since is None:
            return
        with self._lock:
            if self.since is not None and not self.gave_up:
                logger.warning(
                    "The shared frontier's Redis answers again after %.1f s",
                    self.clock() - self.since,
                )
                self.since = None
                self.ended = self.clock()
                self._warned = float("-inf")

    def within(self, seconds: float) -> bool:
        """Redis is down, or was less than ``seconds`` ago."""
        return self.since is not None or self.clock() - self.ended < seconds


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
        "SCHEDULER": "scrapers.crawl.frontier.FrontierScheduler",
        "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
        "SCHEDULER_PERSIST": True,
        "SCHEDULER_QUEUE_KEY": names["requests"],
        "SCHEDULER_QUEUE_CLASS": QUEUE_CLASS,
        "SCHEDULER_DUPEFILTER_KEY": names["dupefilter"],
        "REDIS_START_URLS_KEY": names["start_urls"],
        "FRONTIER_NAME": name,
        "FRONTIER_DOWNLOAD_DELAY": delay,
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": False,
        "REDIS_PARAMS": {**REDIS_PARAMS, **settings.getdict("REDIS_PARAMS")},
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
    is never called since Scrapy 2.16). Idle time is counted from the last response. The worker
    joins the run (``_JOIN``), beats from a thread, and leaves only with the others (``_LEAVE``),
    saying when the run ended short (module docstring).
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
        self.frontier_keys = keys(settings["FRONTIER_NAME"])
        self._heartbeat = settings.getfloat("FRONTIER_HEARTBEAT")
        self._worker_timeout = settings.getfloat("FRONTIER_WORKER_TIMEOUT")
        self.outage = RedisOutage(
            settings.getfloat("FRONTIER_REDIS_OUTAGE_TIMEOUT"),
            lambda: self._close_soon(UNAVAILABLE_REASON),
            settings["REDIS_URL"],
        )
        self.generation = ""
        self._idle = False  # idle past MAX_IDLE_TIME_BEFORE_CLOSE: told to the others
        self._left = False
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_beating = threading.Event()
        self._beating: threading.Thread | None = None
        # Held by a heartbeat and by leaving: a beat sent just after the leave would put this
        # worker back in the run's workers, alive for FRONTIER_WORKER_TIMEOUT after it exited.
        self._membership = threading.Lock()
        self.restarts = RedisRestarts(self.server, RUN_AGAIN)
        self._join = self.server.register_script(_JOIN)
        self._beat_script = self.server.register_script(_BEAT)
        self._leave = self.server.register_script(_LEAVE)
        crawler.signals.connect(self._active, signal=signals.response_received)
        crawler.signals.connect(self._opened, signal=signals.spider_opened)
        crawler.signals.connect(self._closed, signal=signals.spider_closed)

    def _active(self) -> None:
        self.spider_idle_start_time = int(time.time())
        self._idle = False

    async def _opened(self) -> None:
        """Join the run (before any start request meets the duplicate filter), then beat."""
        generation, new_run = await ride_out_start_up(self.crawler, self.outage, self._join_run)
        self.generation = generation.decode() if isinstance(generation, bytes) else generation
        self._loop = asyncio.get_running_loop()  # from now on, giving up on Redis closes
        self._beating = threading.Thread(
            target=self._beat_forever, name="frontier-heartbeat", daemon=True
        )
        self._beating.start()
        self.logger.info(
            "Worker %s %s frontier %s",
            self.worker_id,
            "started a new run of" if new_run else "joined",
            self.frontier_keys["requests"],
        )

    def _join_run(self) -> tuple[bytes | str, int]:
        """``_JOIN``, and the run id of the Redis joined (``RedisRestarts``)."""
        joined = self._join(
            keys=[self.frontier_keys[k] for k in JOIN_KEYS],
            args=[self.worker_id, self._worker_timeout, uuid.uuid4().hex],
        )
        self.restarts.check()
        return joined[0], joined[1]

    def _beat_forever(self) -> None:
        while not self._stop_beating.wait(self._heartbeat):
            try:
                with self._membership:
                    if self._left:
                        return
                    alive = self._beat_script(
                        keys=[self.frontier_keys[k] for k in ("workers", "idle", "generation")],
                        args=[self.worker_id, self.generation, int(self._idle)],
                    )
                if alive:
                    self.restarts.check()
            except redis.RedisError as error:
                self.outage.failed("heartbeat", error)
                continue
            self.outage.answered()
            if not alive:
                self._frontier_lost()
                return

    def _frontier_lost(self) -> None:
        self.logger.error(
            "The shared frontier %s is gone from Redis (restarted without its data, or"
            " cleared): requests it held are lost to this run; %s",
            self.frontier_keys["requests"], RUN_AGAIN,
        )  # fmt: skip
        self._close_soon(LOST_REASON)

    def _close_soon(self, reason: str) -> None:
        """Close the spider with ``reason``, from any thread, once."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._close, reason)

    def _close(self, reason: str) -> None:
        if not self._closing:
            self._closing = True
            deferred_from_coro(self.crawler.engine.close_spider_async(reason=reason))

    def spider_idle(self) -> None:
        """Leave when idle long enough and the run allows it (``_LEAVE``); else stay."""
        if self._closing:  # leaving already (frontier lost, or Redis given up on)
            raise DontCloseSpider
        try:
            super().spider_idle()  # DontCloseSpider until idle for MAX_IDLE_TIME_BEFORE_CLOSE
            self._idle = True
            if self.outage.within(self._worker_timeout):
                # Heartbeats missed in an outage do not make live workers dead: wait for them.
                raise DontCloseSpider
            with self._membership:
                outcome = self._leave(
                    keys=[self.frontier_keys[k] for k in LEAVE_KEYS],
                    args=[self.worker_id, self._worker_timeout, self.generation],
                )
                outcome = outcome.decode() if isinstance(outcome, bytes) else outcome
                self._left = outcome in ("finished", "short")
        except redis.RedisError as error:
            self.outage.failed("idle check", error)
            raise DontCloseSpider from None
        self.outage.answered()
        if outcome == "wait":
            raise DontCloseSpider
        if outcome == "lost":
            self._stop_beating.set()
            self._frontier_lost()
            raise DontCloseSpider
        if outcome == "short":
            self.logger.error(
                "A worker of frontier %s died holding requests (no heartbeat for %g s): they"
                " are lost to this run; %s",
                self.frontier_keys["requests"], self._worker_timeout, RUN_AGAIN,
            )  # fmt: skip
            raise CloseSpider(WORKERS_LOST_REASON)

    def _closed(self, reason: str) -> None:
        """Leave the run. Stopped (SIGTERM, Ctrl-C) as its last live worker with requests
        queued, the worker says the run is unfinished (``LEFT_QUEUED_STAT``); so does a worker
        that saw Redis restart unsafely (``RESTARTED_STAT``), the last check here."""
        self._stop_beating.set()
        with suppress(redis.RedisError):
            self.restarts.check()
        if self.restarts.unsafe:
            self.crawler.stats.set_value(RESTARTED_STAT, self.restarts.unsafe)
        with self._membership:
            if self._left:
                return
            self._left = True
        queued = 0
        try:
            self.server.hdel(self.frontier_keys["workers"], self.worker_id)
            self.server.hdel(self.frontier_keys["idle"], self.worker_id)
            self.server.hdel(self.frontier_keys["taken"], *slot_fields(self.worker_id))
            if reason == "shutdown":
                others = live_workers(
                    self.server, self.frontier_keys["workers"], self._worker_timeout
                )
                queued = 0 if others else self.server.zcard(self.frontier_keys["requests"])
        except redis.RedisError as error:
            self.logger.warning(
                "Could not leave frontier %s: %s",
                self.frontier_keys["requests"],
                redis_error(error, self.crawler.settings["REDIS_URL"]),
            )
            queued = -1 if reason == "shutdown" else 0
        if queued:
            self.crawler.stats.set_value(LEFT_QUEUED_STAT, queued)
            self.logger.error(
                "Stopped as the last live worker of frontier %s with %s requests queued; %s",
                self.frontier_keys["requests"], "unknown" if queued < 0 else queued, RUN_AGAIN,
            )  # fmt: skip


class FrontierScheduler(Scheduler):
    """scrapy-redis's scheduler, riding out Redis outages (``RedisOutage``).

    A request discovered while Redis does not answer is held in memory and queued when it
    answers again; the worker then counts as busy, so it neither idles out nor takes anything.
    Requests still held when the worker leaves are counted (``UNQUEUED_STAT``) and logged, and
    the crawl exits 1: the next run finds them again. Built in ``open``, which the engine
    awaits, so that a Redis gone since the start-up check is ridden out there too.
    """

    outage: RedisOutage
    held: list[Request]
    built: bool

    crawler: Crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FrontierScheduler:
        """An empty scheduler: scrapy-redis's own construction pings Redis, which may have gone
        away since the worker's start-up check; ``open`` builds it, riding the outage out."""
        scheduler = cls.__new__(cls)
        scheduler.crawler = crawler
        scheduler.outage = crawler.spider.outage
        scheduler.held = []
        scheduler.built = False
        return scheduler

    def open(self, spider: Any) -> Deferred[None]:
        return deferred_from_coro(self._open(spider))

    async def _open(self, spider: Any) -> None:
        def build() -> None:
            vars(self).update(vars(Scheduler.from_crawler(self.crawler)))
            super(FrontierScheduler, self).open(spider)  # counts the queue: a Redis call
            self.built = True

        with suppress(CloseSpider):  # the spider closes, on joining the run (engine's rule)
            await ride_out_start_up(self.crawler, self.outage, build)

    def enqueue_request(self, request: Request) -> bool:
        try:
            if self._queue_held():
                return self._add(request)
        except redis.RedisError as error:
            self.outage.failed("queue", error)
        self.held.append(request)
        return True

    def _add(self, request: Request) -> bool:
        """Queue ``request`` unless the duplicate filter has it (``FrontierQueue.add``: one
        script, so a second try after a lost answer finds it queued, not dropped)."""
        fingerprint = "" if request.dont_filter else self.df.request_fingerprint(request)
        if not self.queue.add(request, fingerprint):
            self.df.log(request, self.spider)
            return False
        self.stats.inc_value("scheduler/enqueued/redis")
        return True

    def next_request(self) -> Request | None:
        try:
            request = super().next_request() if self._queue_held() else None
        except redis.RedisError as error:
            self.outage.failed("queue", error)
            return None
        return request

    def has_pending_requests(self) -> bool:
        if self.held or (self.built and self.queue.pop_unanswered):
            return True
        try:
            return bool(super().has_pending_requests())
        except redis.RedisError as error:
            self.outage.failed("queue", error)
            return not self.outage.gave_up

    def _queue_held(self) -> bool:
        """Queue the held requests (a held one the duplicate filter has was queued by the try
        whose answer was lost, or found by another worker); False while Redis does not answer."""
        while self.held:
            try:
                self._add(self.held[0])
            except redis.RedisError as error:
                self.outage.failed("queue", error)
                return False
            self.held.pop(0)
        return True

    def close(self, reason: str) -> None:
        unqueued = len(self.held) + self._requeue_unanswered_pop()
        if unqueued:
            self.stats.set_value(UNQUEUED_STAT, unqueued)
            logger.error(
                "%d requests found or taken while Redis did not answer were never queued; %s",
                unqueued, RUN_AGAIN,
            )  # fmt: skip
        if self.built:
            super().close(reason)

    def _requeue_unanswered_pop(self) -> int:
        """Leaving with a pop unanswered (stopped, or Redis given up on): the request Redis
        moved into this worker's slot, if it did, goes back to the queue, else nobody would
        crawl it. 1 when Redis does not answer (it may hold one), else 0."""
        if not (self.built and self.queue.pop_unanswered):
            return 0
        try:
            request = self.queue.pop()
            if request is not None:
                self.queue.push(request)
        except redis.RedisError:
            return 1
        return 0


async def ride_out_start_up(crawler: Crawler, outage: RedisOutage, call: Callable[[], T]) -> T:
    """``call()`` (a Redis call of the worker's start-up), tried again every ``_OUTAGE_RETRY``
    seconds while Redis does not answer, as a running worker rides an outage out: bounded by
    ``FRONTIER_REDIS_OUTAGE_TIMEOUT``, then ``CloseSpider(UNAVAILABLE_REASON)``, for this call
    and every later one. A stop (SIGTERM, Ctrl-C) ends the wait at once: nothing was fetched
    yet, and the run is left for the next one."""
    while not outage.gave_up:
        try:
            result = call()
        except redis.RedisError as error:
            outage.failed("start-up", error)
            if not crawler.crawling:
                outage.gave_up = True
            if outage.gave_up:
                break
            await asyncio.sleep(_OUTAGE_RETRY)
            continue
        outage.answered()
        return result
    raise CloseSpider(UNAVAILABLE_REASON)


def live_workers(server: redis.Redis, key: str, timeout: float) -> dict[str, float]:
    """Workers whose heartbeat (on Redis's clock) is younger than ``timeout`` s, with its age."""
    seconds, microseconds = server.time()
    now = seconds + microseconds / 1e6
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
        self.outage: RedisOutage = crawler.spider.outage
        self.client = redis.asyncio.Redis.from_url(settings["REDIS_URL"], **REDIS_PARAMS)
        self.take_turn = self.client.register_script(_TAKE_TURN)
        self.push_free = self.client.register_script(_PUSH_FREE)
        self.pending: set[asyncio.Task[Any]] = set()  # backoffs being sent: keep a reference
        # Turns whose end could not be told to Redis: ended before this worker's next turn.
        self.unended: list[tuple[list[str], str]] = []
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
        """Wait for this request's turn at its site; through a Redis outage too, until the
        worker gives up on Redis (the request is then dropped: the run exits non-zero)."""
        if request.url.startswith("file:"):
            return
        token = uuid.uuid4().hex
        grace = min(_POLL, self.delay)
        arguments = [token, self.turn_ms, self.worker, grace]
        while True:
            try:
                await self._end_unended_turns()
                answer = float(await self.take_turn(keys=self._keys(request), args=arguments))
            except redis.RedisError as error:
                self.outage.failed("politeness", error)
                if self.outage.gave_up:
                    raise IgnoreRequest("the shared frontier's Redis does not answer") from None
                await asyncio.sleep(_OUTAGE_RETRY)
                continue
            self.outage.answered()
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
            self.unended.append((self._keys(request), token))
            try:
                await self._end_unended_turns()
            except redis.RedisError as error:
                self.outage.failed("politeness", error)

    async def _end_unended_turns(self) -> None:
        while self.unended:
            site_keys, token = self.unended[0]
            ttl = int(self.delay) + 3600
            await self.push_free(keys=site_keys, args=[self.delay, token, ttl])
            self.unended.pop(0)

    def back_off(self, request: Request, delay: float) -> None:
        """A block page: push the site's next free moment ``delay`` seconds away for all."""
        task = asyncio.get_running_loop().create_task(self._push_back(request, delay))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _push_back(self, request: Request, delay: float) -> None:
        try:
            await self.push_free(keys=self._keys(request), args=[delay, "", int(delay) + 3600])
        except redis.RedisError as error:
            self.outage.failed("politeness", error)

    async def close(self) -> None:
        await self.client.aclose()
