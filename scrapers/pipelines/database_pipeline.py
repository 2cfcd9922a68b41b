"""Scrapy's front door to the batch writer.

Items are buffered and handed to ``scrapers.db.write.writer.BatchWriter`` in batches of
``DATABASE_BATCH_SIZE``, or after ``DATABASE_BATCH_MAX_LATENCY`` seconds, on one worker thread:
psycopg2 blocks, and the reactor must not. One thread also keeps flushes in order, so a
setlist is always written before (or with) its rows. The pipeline never holds more than
``2 * DATABASE_BATCH_SIZE`` items: an item that would exceed that waits (back-pressure on the
crawl) until a batch is stored or spooled.

A lost database is retried for ``DATABASE_RETRY_TIMEOUT`` seconds; if it is still away, or the
writer fails for another reason, batches go to spool files instead
(``scrapers.pipelines.outage``, which also notices a stop).

Stopping (SIGTERM, Ctrl-C, the end of the crawl) is noticed within a quarter of a second, by a
task that waits for nothing else (a flush waits for the write in progress): the writer stops
retrying, whatever is held is stored or spooled at once, and from then on every
item is handed on as it arrives. A write stuck in the network (a connection attempt to a host
that never answers) is left behind after ``CLOSE_GRACE`` seconds and its batch spooled; it
runs on a daemon thread, so it cannot keep the process alive. A batch both written late and
spooled is harmless: replaying it changes nothing. ``scrapy crawl`` exits non-zero when
anything was spooled (``scrapers.commands.crawl``).

Any error other than "the database is unavailable" is a defect, in the writer or in the
database's schema (say, migrations not applied): it is logged at ERROR with its traceback, the
batch and every later item are spooled apart, and the crawl is stopped with finish reason
``database_writer_error``.

A second Ctrl-C makes Scrapy stop at once, without closing the spider. ``scrapy crawl`` then
sends ``CRAWL_ENDED`` and the pipeline spools what it holds, so nothing it accepted is lost
either way.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from scrapy.crawler import Crawler

from scrapers.db.server.connection import configured_database_url, resolve_database_url
from scrapers.db.write.locks import LockWaitLog
from scrapers.db.write.records import is_setlist
from scrapers.db.write.writer import BatchResult, BatchWriter, DatabaseUnavailable
from scrapers.items import to_plain
from scrapers.pipelines.outage import (
    TICK,
    UNAVAILABLE,
    WRITER_ERROR,
    Abandoned,
    Outage,
    watch_for_stop,
)
from scrapers.settings_check import InvalidSetting, seconds, whole_number

logger = logging.getLogger(__name__)

HELD_STAT = "database/items_held_max"
WRITER_ERROR_REASON = "database_writer_error"
# Sent by ``scrapy crawl`` once the crawl has ended, however it ended. After a graceful close
# the pipeline holds nothing; after a forced stop it holds what the spider never got to flush.
CRAWL_ENDED = object()
# Seconds a write in progress may take after a stop before its batch is spooled instead.
CLOSE_GRACE = 3.0

Held = tuple[Any, str | None]  # an item and where it came from


class _Worker:
    """Runs calls one at a time, in order, on one daemon thread.

    Not a ``ThreadPoolExecutor``: Python joins those threads at exit, so a connection attempt
    hanging in the kernel would keep a stopped crawl alive until it timed out.
    """

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]]
        self._calls = queue.SimpleQueue()
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._calls.put((future, function, args))
        return future

    def _run(self) -> None:
        while True:
            future, function, args = self._calls.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args))
            except BaseException as error:
                future.set_exception(error)


class DatabasePipeline:
    def __init__(
        self,
        crawler: Crawler,
        *,
        batch_size: int,
        max_latency: float,
        retry_timeout: float,
        probe_interval: float,
        spool_dir: Path,
    ) -> None:
        self.crawler = crawler
        self.batch_size = batch_size
        self.max_held = 2 * batch_size
        self.max_latency = max_latency
        self.retry_timeout = retry_timeout
        self.outage = Outage(crawler, spool_dir=spool_dir, probe_interval=probe_interval)
        self._buffer: list[Held] = []
        self._in_flight: list[Held] = []
        self._oldest = 0.0
        self._worker_stuck = False  # a call was left behind after a stop
        self._writer: BatchWriter | None = None
        self._worker: _Worker | None = None
        self._lock: asyncio.Lock | None = None
        self._room: asyncio.Condition | None = None
        self._stopping: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_watch: asyncio.Task[None] | None = None
        # A batch waiting for other writers' locks (told from the writer's thread): its items
        # wait in the buffer, and SIGTERM still spools them.
        self._lock_wait = LockWaitLog(logger, "Database writes")
        self._watch_crawler = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DatabasePipeline:
        """Read the settings strictly: a wrong value stops the crawl (``InvalidSetting``,
        ``DatabaseUrlError``)."""
        settings = crawler.settings
        # A DATABASE_URL libpq cannot parse stops the crawl here, before anything starts.
        configured_database_url(settings)
        spool_dir = str(settings.get("DATABASE_SPOOL_DIR") or "").strip()
        if not spool_dir:
            raise InvalidSetting("DATABASE_SPOOL_DIR", "a folder", spool_dir)
        pipeline = cls(
            crawler,
            batch_size=whole_number(
                "DATABASE_BATCH_SIZE", settings.get("DATABASE_BATCH_SIZE"), minimum=1
            ),
            max_latency=seconds(
                "DATABASE_BATCH_MAX_LATENCY", settings.get("DATABASE_BATCH_MAX_LATENCY")
            ),
            retry_timeout=seconds(
                "DATABASE_RETRY_TIMEOUT",
                settings.get("DATABASE_RETRY_TIMEOUT"),
                allow_zero=True,
            ),
            probe_interval=seconds(
                "DATABASE_PROBE_INTERVAL", settings.get("DATABASE_PROBE_INTERVAL")
            ),
            spool_dir=Path(spool_dir),
        )
        crawler.signals.connect(pipeline.spool_unflushed_items, signal=CRAWL_ENDED)
        return pipeline

    @property
    def spool_path(self) -> Path | None:
        """The spool file of items kept because the database was unavailable, if any."""
        return self.outage.spool_path

    @property
    def _spider_name(self) -> str:
        spider = self.crawler.spider
        return spider.name if spider is not None else "items"

    async def open_spider(self, spider: Any = None) -> None:
        self._worker = _Worker("database-writer")
        self._lock = asyncio.Lock()
        self._room = asyncio.Condition()
        self._stopping = asyncio.Event()
        # Only a crawl that is running can be stopped; a pipeline driven by hand is not.
        self._watch_crawler = self.crawler.crawling
        url = await self._call(resolve_database_url, self.crawler.settings)
        self._writer = BatchWriter(
            url,
            origin=f"spider:{self._spider_name}",
            retry_timeout=self.retry_timeout,
            on_lock_wait=self._lock_wait,
        )
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._flush_when_stale()))
        if self._watch_crawler:
            self._stop_watch = loop.create_task(watch_for_stop(self.crawler, self._begin_stop))

    async def process_item(self, item: Any, spider: Any = None) -> Any:
        assert self._room is not None and self._stopping is not None
        async with self._room:
            # Back-pressure: while a batch is being written (or retried), at most ``max_held``
            # items are accepted; the rest of the crawl waits here.
            await self._room.wait_for(lambda: self._held() < self.max_held)
            if not self._buffer:
                self._oldest = time.monotonic()
            self._buffer.append((item, _location(item)))
            if self.crawler.stats is not None:
                self.crawler.stats.max_value(HELD_STAT, self._held())
        if len(self._buffer) >= self.batch_size or self._stopping.is_set():
            # The item that fills the batch waits for it to be stored or spooled; once
            # stopping, every item is, so that a kill soon after loses nothing.
            await self.flush(full_only=True)
        return item

    async def close_spider(self, spider: Any = None) -> None:
        assert self._lock is not None and self._stopping is not None
        self._begin_stop()
        if self._stop_watch is not None:
            self._stop_watch.cancel()
        async with self._lock:
            # Never cancel a timed flush half-way: its batch would be in neither buffer.
            for task in self._tasks:
                task.cancel()
            self.outage.stop_probing()
        await self.flush()
        if self._writer is not None:
            try:
                await self._call(self._writer.close)
            except Abandoned:
                logger.warning("Left the database connection behind: it did not answer in time")
        self.outage.close()

    async def flush(self, *, full_only: bool = False) -> None:
        """Store (or, in an outage, spool) everything buffered, in arrival order.

        ``full_only``: unless stopping, only if a whole batch is buffered (by the time the lock
        is ours, an earlier flush may have taken it).
        """
        assert self._lock is not None and self._stopping is not None
        async with self._lock:
            if full_only and len(self._buffer) < self.batch_size and not self._stopping.is_set():
                return
            # A page is stored, or refreshed, in one transaction: unless stopping, a page whose
            # setlist item (its last item) has not arrived yet stays in the buffer.
            end = len(self._buffer) if self._stopping.is_set() else _end_of_last_page(self._buffer)
            batch, self._buffer = self._buffer[:end], self._buffer[end:]
            if not batch:
                return
            self._in_flight = batch
            try:
                reason = self.outage.destination
                if reason is None:
                    await self._write(batch)
                else:
                    await self.outage.spool([item for item, _ in batch], reason)
            finally:
                self._in_flight = []
                await self._make_room()

    async def _write(self, batch: list[Held]) -> None:
        assert self._writer is not None
        items = [item for item, _ in batch]
        locations = [location for _, location in batch]
        try:
            result = await self._call(self._writer.write, items, locations)
        except DatabaseUnavailable as error:
            await self._spool_in_outage(items, str(error))
        except Abandoned:
            await self._spool_in_outage(
                items, "a write did not finish in time after the crawl was stopped"
            )
        except Exception:
            # Not an outage: a defect that retrying will not cure. Keep the items, say so
            # loudly, and stop the crawl rather than scrape a site into a spool file.
            logger.exception(
                "Could not store %d items: the database writer failed. They and every later"
                " item go to a writer-error spool file; the crawl stops.",
                len(batch),
            )
            self.outage.writer_failed()
            await self.outage.spool(items, WRITER_ERROR)
            self._stop_crawl()
        else:
            self._record(result)

    async def _spool_in_outage(self, items: list[Any], why: str) -> None:
        assert self._writer is not None and self._stopping is not None
        writer = self._writer
        self.outage.begin(why, lambda: self._call(writer.ping), self._stopping)
        await self.outage.spool(items, UNAVAILABLE)

    async def _flush_when_stale(self) -> None:
        """Flush a batch whose oldest item waited ``max_latency``, and all once stopping."""
        assert self._stopping is not None
        while True:
            await asyncio.sleep(TICK)
            stale = time.monotonic() - self._oldest >= self.max_latency
            if self._buffer and (stale or self._stopping.is_set()):
                try:
                    await self.flush()
                except Exception:  # already logged with its count; keep watching for a stop
                    logger.exception("Timed flush failed")

    def _begin_stop(self) -> None:
        assert self._stopping is not None
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._writer is not None:
            self._writer.give_up()

    def _stop_crawl(self) -> None:
        try:
            engine = self.crawler.engine
        except RuntimeError:  # a pipeline driven by hand, outside a crawl
            return
        if engine.spider is not None:
            asyncio.get_running_loop().create_task(
                engine.close_spider_async(reason=WRITER_ERROR_REASON)
            )

    def _held(self) -> int:
        return len(self._buffer) + len(self._in_flight)

    async def _make_room(self) -> None:
        assert self._room is not None
        async with self._room:
            self._room.notify_all()

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` on the worker thread. Once stopping, wait at most
        ``CLOSE_GRACE`` more seconds for it, then raise ``Abandoned``."""
        assert self._worker is not None and self._stopping is not None
        if self._worker_stuck:
            raise Abandoned  # a call left behind still holds the thread
        done = asyncio.wrap_future(self._worker.submit(function, *args))
        if not self._stopping.is_set():
            stop = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({done, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
        if not done.done():
            await asyncio.wait({done}, timeout=CLOSE_GRACE)
        if not done.done():
            # The thread carries on alone; its result, if it ever comes, is not needed.
            done.add_done_callback(lambda future: future.cancelled() or future.exception())
            self._worker_stuck = True
            raise Abandoned
        return done.result()

    def _record(self, result: BatchResult) -> None:
        stats = self.crawler.stats
        if stats is None:
            return
        stats.inc_value("database/items_stored", result.stored)
        stats.inc_value("database/tracks_inserted", result.inserted)
        stats.inc_value("database/tracks_updated", result.updated)
        stats.inc_value("database/identifier_conflicts", result.conflicts)
        for reason, count in result.rejected.items():
            stats.inc_value(f"database/items_rejected/{reason}", count)

    def spool_unflushed_items(self) -> None:
        """Save whatever a crawl stopped by force (a second Ctrl-C) left in the pipeline.

        The batch being written may commit after all; replaying it is idempotent.
        """
        pending = self._in_flight + self._buffer
        self._in_flight, self._buffer = [], []
        self.outage.spool_unflushed([item for item, _ in pending])


def _end_of_last_page(pending: list[tuple[Any, str | None]]) -> int:
    """Where the last whole page ends: after its setlist item; everything if none has come."""
    for index in range(len(pending) - 1, -1, -1):
        if is_setlist(to_plain(pending[index][0])):
            return index + 1
    return len(pending)


def _location(item: Any) -> str | None:
    """Where a track row came from, for rejected_items: ``source:source_id#row``."""
    try:
        fields = to_plain(item)
    except Exception:
        return None
    if fields.get("setlist_source_id") is not None:
        return (
            f"{fields.get('setlist_source')}:{fields['setlist_source_id']}"
            f"#row{fields.get('row_index')}"
        )
    if fields.get("source_id") is not None:
        return fields.get("url") or f"{fields.get('source')}:{fields['source_id']}"
    return None
