"""Per-source rate limiters: one per process (``RateLimiter``) or shared by every worker.

``RateLimiter`` is shared by the threads of one process: each caller reserves the next free slot
under a lock and then sleeps outside it, so the slots handed out are spaced exactly ``1 / rate``
apart however many threads wait. ``PostgresRateLimiter`` and ``RedisRateLimiter`` do the same
in a store every worker process reaches, so several workers share one budget. A throttling answer
from the source (503, 429, Deezer's quota error) pushes every later slot back with ``hold``.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.extensions
import redis

from scrapers.db.server.connection import connect

if TYPE_CHECKING:
    from scrapers.enrichment.config import EnrichmentConfig

logger = logging.getLogger(__name__)


class SlotLimiter(ABC):
    """What every limiter shares: callers sleep outside any lock until the slot they reserved."""

    def __init__(self, rate: float, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.interval = 1.0 / rate
        self._sleep = sleep
        self._stats = threading.Lock()
        self.waited_seconds = 0.0
        self.acquired = 0

    def acquire(self) -> float:
        """Block until this caller may send one request; returns the seconds waited."""
        wait = max(0.0, self._reserve())
        with self._stats:
            self.waited_seconds += wait
            self.acquired += 1
        if wait > 0:
            self._sleep(wait)
        return wait

    @abstractmethod
    def hold(self, seconds: float) -> None:
        """No slot starts within ``seconds`` from now (the source asked us to back off)."""

    @abstractmethod
    def _reserve(self) -> float:
        """Reserve the next slot; the seconds until it starts."""


class RateLimiter(SlotLimiter):
    """The limit of one process, shared by its threads."""

    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if burst < 1:
            raise ValueError("burst must be >= 1")
        super().__init__(rate, sleep=sleep)
        self._tolerance = (burst - 1) * self.interval
        self._clock = clock
        self._lock = threading.Lock()
        # Theoretical arrival time of the next request (GCRA); starts "now" so the first call
        # never waits.
        self._next_slot = float("-inf")
        self._held_until = float("-inf")

    def _reserve(self) -> float:
        with self._lock:
            now = self._clock()
            start = max(now, self._next_slot - self._tolerance, self._held_until)
            self._next_slot = max(self._next_slot, start) + self.interval
            return start - now

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._held_until = max(self._held_until, self._clock() + seconds)


class RateLimitUnavailableError(RuntimeError):
    """The store of a shared rate limit cannot be reached: no request may be sent.

    Not a verdict on the track: the source is "unavailable now". The backfill hands such a
    track back unmarked, so that the next batch takes it (``scrapers.enrichment.backfill``).
    """

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message)
        self.source = source


class SharedRateLimiter(SlotLimiter):
    """A source's rate limit held outside the process, so every worker shares one budget.

    The store hands out slots ``1 / rate`` apart on its own clock (PostgreSQL's or Redis's), and
    answers how long this caller must wait for its slot; the caller sleeps that long here. Only
    durations cross machines, so workers on hosts with skewed clocks still share one spacing.
    Subclasses implement ``_store_reserve`` and ``_store_hold`` as one atomic statement each.
    When the store fails, no slot is handed out (``RateLimitUnavailableError``): fail closed,
    never over the rate. Store errors carry no URL password (psycopg2's and redis-py's
    connection errors name the host only).
    """

    store_errors: tuple[type[Exception], ...] = ()

    def __init__(self, source: str, rate: float, **kwargs: Any) -> None:
        super().__init__(rate, **kwargs)
        self.source = source

    def _reserve(self) -> float:
        try:
            return self._store_reserve()
        except self.store_errors as error:
            raise RateLimitUnavailableError(
                self.source, f"shared rate limit of {self.source} unavailable: {error}"
            ) from error

    def hold(self, seconds: float) -> None:
        """Best effort: a store that fails here fails the next ``acquire`` too."""
        try:
            self._store_hold(seconds)
        except self.store_errors as error:
            logger.warning("Could not hold the %s rate limit: %s", self.source, error)

    def close(self) -> None:
        """Release the connection to the store."""

    @abstractmethod
    def _store_reserve(self) -> float:
        """Reserve the next slot in the store, atomically; the seconds until it starts."""

    @abstractmethod
    def _store_hold(self, seconds: float) -> None:
        """No slot in the store starts within ``seconds`` from now, atomically."""


# GCRA on the database clock: the slot starts at the later of now, the next free slot and any
# hold, and the next free slot moves one interval past it. The row lock orders concurrent callers.
_PG_RESERVE = """
INSERT INTO enrichment_rate_limits AS r (source, next_slot)
VALUES (%(source)s, clock_timestamp() + make_interval(secs => %(interval)s))
ON CONFLICT (source) DO UPDATE
   SET next_slot = greatest(r.next_slot, r.held_until, clock_timestamp())
                   + make_interval(secs => %(interval)s)
RETURNING extract(epoch FROM r.next_slot - clock_timestamp())::float8 - %(interval)s
"""
_PG_HOLD = """
INSERT INTO enrichment_rate_limits AS r (source, next_slot, held_until)
VALUES (%(source)s, clock_timestamp(), clock_timestamp() + make_interval(secs => %(seconds)s))
ON CONFLICT (source) DO UPDATE
   SET held_until = greatest(r.held_until, clock_timestamp() + make_interval(secs => %(seconds)s))
"""


class PostgresRateLimiter(SharedRateLimiter):
    """Slots in ``enrichment_rate_limits`` (migration 006): one upsert per request."""

    store_errors = (psycopg2.Error,)

    def __init__(self, database_url: str, source: str, rate: float, **kwargs: Any) -> None:
        super().__init__(source, rate, **kwargs)
        self._url = database_url
        self._lock = threading.Lock()
        self._connection: psycopg2.extensions.connection | None = None

    def _execute(self, statement: str, params: dict[str, Any]) -> Any:
        """Run one autocommit statement; a connection broken since the last call is replaced."""
        with self._lock:
            try:
                return self._run(statement, params)
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self.close()
                return self._run(statement, params)

    def _run(self, statement: str, params: dict[str, Any]) -> Any:
        if self._connection is None or self._connection.closed:
            self._connection = connect(self._url, autocommit=True)
        with self._connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchone() if cursor.description else None

    def _store_reserve(self) -> float:
        row = self._execute(_PG_RESERVE, {"source": self.source, "interval": self.interval})
        return float(row[0])

    def _store_hold(self, seconds: float) -> None:
        self._execute(_PG_HOLD, {"source": self.source, "seconds": seconds})

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


# The same GCRA on the Redis server's clock, atomic as a script. Numbers go back as strings:
# Redis truncates a script's float results to integers.
_REDIS_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local interval = tonumber(ARGV[1])
local nxt = tonumber(redis.call('HGET', KEYS[1], 'next') or now)
local held = tonumber(redis.call('HGET', KEYS[1], 'held') or now)
local start = math.max(now, nxt, held)
redis.call('HSET', KEYS[1], 'next', string.format('%.6f', start + interval))
redis.call('PEXPIRE', KEYS[1], math.ceil((start + interval - now + 3600) * 1000))
return string.format('%.6f', start - now)
"""
_REDIS_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local held = tonumber(redis.call('HGET', KEYS[1], 'held') or now)
local until_ = math.max(held, now + tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'held', string.format('%.6f', until_))
redis.call('PEXPIRE', KEYS[1], math.ceil((until_ - now + 3600) * 1000))
return 1
"""


class RedisRateLimiter(SharedRateLimiter):
    """Slots in the Redis hash ``<prefix>ratelimit:<source>``: one script call per request."""

    store_errors = (redis.RedisError,)

    def __init__(
        self, redis_url: str, source: str, rate: float, *, key_prefix: str, **kwargs: Any
    ) -> None:
        super().__init__(source, rate, **kwargs)
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=10)
        self._redis.ping()  # an unreachable Redis stops the worker at start, not mid-batch
        self.key = f"{key_prefix}ratelimit:{source}"
        self._reserve_script = self._redis.register_script(_REDIS_RESERVE)
        self._hold_script = self._redis.register_script(_REDIS_HOLD)

    def _store_reserve(self) -> float:
        return float(self._reserve_script(keys=[self.key], args=[repr(self.interval)]))

    def _store_hold(self, seconds: float) -> None:
        self._hold_script(keys=[self.key], args=[repr(float(seconds))])

    def close(self) -> None:
        self._redis.close()


def shared_limiters(config: EnrichmentConfig, database_url: str) -> dict[str, SharedRateLimiter]:
    """One limiter per enabled source, in Redis when ``config.redis_url`` is set, else PostgreSQL.

    Every worker pointed at the same store shares one budget per source, at the rate of
    ``ENRICHMENT_RATES`` (raise it for a self-hosted MusicBrainz mirror).
    """
    limiters: dict[str, SharedRateLimiter] = {}
    for name in config.enabled_sources():
        rate = config.sources[name].rate
        if config.redis_url:
            limiters[name] = RedisRateLimiter(
                config.redis_url, name, rate, key_prefix=config.redis_key_prefix
            )
        else:
            limiters[name] = PostgresRateLimiter(database_url, name, rate)
    return limiters
