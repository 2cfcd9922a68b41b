"""Scrapy's front door to the batch writer.

Items are buffered and handed to ``scrapers.db.writer.BatchWriter`` in batches of
``DATABASE_BATCH_SIZE``, or after ``DATABASE_BATCH_MAX_LATENCY`` seconds, on one worker thread:
psycopg2 blocks, and the reactor must not. One thread also keeps flushes in order, so a
setlist is always written before (or with) its rows.

If the database stays away longer than ``DATABASE_RETRY_TIMEOUT``, the batch is kept and tried
again at the next flush. Whatever is still unsaved when the spider closes (end of crawl,
Ctrl-C, SIGTERM: Scrapy closes the spider gracefully on all three) goes to a spool file of JSON
lines, the same shape ``scrapy crawl -O items.jsonl`` writes, for the importer to replay; the
crawl then exits non-zero (``scrapers.commands.crawl``).

A second Ctrl-C makes Scrapy stop at once, without closing the spider. ``scrapy crawl`` then
sends ``CRAWL_ENDED`` and the pipeline spools what it holds (the buffer, the batch being
written, the batch kept after a failure), so nothing it accepted is lost either way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from scrapers import metrics
from scrapers.db.connection import resolve_database_url
from scrapers.db.records import to_plain
from scrapers.db.writer import BatchResult, BatchWriter

logger = logging.getLogger(__name__)

SPOOLED_STAT = "database/items_spooled"
# Sent by ``scrapy crawl`` once the crawl has ended, however it ended. After a graceful close
# the pipeline holds nothing; after a forced stop it holds what the spider never got to flush.
CRAWL_ENDED = object()


class DatabasePipeline:
    def __init__(
        self,
        crawler: Crawler,
        *,
        batch_size: int,
        max_latency: float,
        retry_timeout: float,
        spool_dir: Path,
    ) -> None:
        if batch_size < 1 or max_latency <= 0:
            raise NotConfigured("DATABASE_BATCH_SIZE and DATABASE_BATCH_MAX_LATENCY must be > 0")
        self.crawler = crawler
        self.batch_size = batch_size
        self.max_latency = max_latency
        self.retry_timeout = retry_timeout
        self.spool_dir = spool_dir
        self.spool_path: Path | None = None
        self._buffer: list[tuple[Any, str | None]] = []
        self._unsaved: list[tuple[Any, str | None]] = []
        self._in_flight: list[tuple[Any, str | None]] = []
        self._oldest = 0.0
        self._writer: BatchWriter | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock: asyncio.Lock | None = None
        self._timer: asyncio.Task[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DatabasePipeline:
        settings = crawler.settings
        pipeline = cls(
            crawler,
            batch_size=settings.getint("DATABASE_BATCH_SIZE", 500),
            max_latency=settings.getfloat("DATABASE_BATCH_MAX_LATENCY", 5.0),
            retry_timeout=settings.getfloat("DATABASE_RETRY_TIMEOUT", 60.0),
            spool_dir=Path(settings.get("DATABASE_SPOOL_DIR") or "spool"),
        )
        crawler.signals.connect(pipeline.spool_unflushed_items, signal=CRAWL_ENDED)
        return pipeline

    @property
    def _spider_name(self) -> str:
        spider = self.crawler.spider
        return spider.name if spider is not None else "items"

    async def open_spider(self, spider: Any = None) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="database-writer")
        self._lock = asyncio.Lock()
        settings = self.crawler.settings
        url = await self._in_thread(resolve_database_url, settings)
        self._writer = BatchWriter(
            url, origin=f"spider:{self._spider_name}", retry_timeout=self.retry_timeout
        )
        self._timer = asyncio.get_running_loop().create_task(self._flush_when_stale())

    async def process_item(self, item: Any, spider: Any = None) -> Any:
        if not self._buffer:
            self._oldest = time.monotonic()
        self._buffer.append((item, _location(item)))
        if len(self._buffer) >= self.batch_size:
            # The item that fills the batch waits for it: back-pressure on the crawl when the
            # database is slow or away.
            await self.flush()
        return item

    async def close_spider(self, spider: Any = None) -> None:
        if self._timer is not None and self._lock is not None:
            # Never cancel a timed flush half-way: its batch would be in neither buffer.
            async with self._lock:
                self._timer.cancel()
        await self.flush()
        if self._unsaved:
            unsaved, self._unsaved = self._unsaved, []
            await self._in_thread(self._spool, unsaved, "The database stayed unreachable")
        if self._writer is not None:
            await self._in_thread(self._writer.close)
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def flush(self) -> None:
        """Write everything buffered (and anything a failed flush kept), in arrival order."""
        assert self._lock is not None and self._writer is not None
        async with self._lock:
            batch, self._buffer = self._unsaved + self._buffer, []
            self._unsaved = []
            if not batch:
                return
            items = [item for item, _ in batch]
            locations = [location for _, location in batch]
            self._in_flight = batch
            try:
                result = await self._in_thread(self._writer.write, items, locations)
            except Exception as error:
                # The writer already retried with backoff; keep the items for the next flush.
                self._unsaved = batch
                logger.error(
                    "Could not write %d items to the database (%s); keeping them for the next"
                    " attempt",
                    len(batch),
                    error,
                )
                return
            finally:
                self._in_flight = []
            self._record(result)

    async def _flush_when_stale(self) -> None:
        while True:
            await asyncio.sleep(self.max_latency / 2)
            if self._buffer and time.monotonic() - self._oldest >= self.max_latency:
                try:
                    await self.flush()
                except Exception:
                    logger.exception("Timed flush failed")

    async def _in_thread(self, function: Any, *args: Any) -> Any:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

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
        pending = self._unsaved + self._in_flight + self._buffer
        self._unsaved, self._in_flight, self._buffer = [], [], []
        if pending:
            self._spool(pending, "Forced shutdown before the pipeline could flush")

    def _spool(self, pending: list[tuple[Any, str | None]], why: str) -> None:
        """Save items as JSON lines, log where, and mark the crawl as failed."""
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.spool_dir / f"{self._spider_name}-{stamp}.jsonl"
        with path.open("w", encoding="utf-8") as spool:
            for item, _ in pending:
                spool.write(json.dumps(to_plain(item), ensure_ascii=False, default=str))
                spool.write("\n")
        self.spool_path = path.resolve()
        metrics.ITEMS_SPOOLED.inc(len(pending))
        if self.crawler.stats is not None:
            self.crawler.stats.inc_value(SPOOLED_STAT, len(pending))
        logger.error(
            "%s: %d unsaved items written to %s."
            " Replay them with the importer (jsonl) once the database is back.",
            why,
            len(pending),
            self.spool_path,
        )


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
