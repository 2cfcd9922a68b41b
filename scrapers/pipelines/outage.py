"""Where the database pipeline's batches go when the database cannot take them.

A lost database is retried by the writer for ``DATABASE_RETRY_TIMEOUT`` seconds. If it is still
away, the pipeline enters an *outage* (``Outage.begin``): each batch is spooled as it fills, to
a spool file of JSON lines (``scrapers.pipelines.spool``, replayed by the importer), without
waiting for the database, and the database is probed every ``DATABASE_PROBE_INTERVAL`` seconds;
once it answers, batches are stored again. Memory stays bounded however long the outage lasts,
and every spooled batch is on disk (fsync'd) before the next one is taken.

Only "the database is unavailable" counts as an outage. Any other error is a defect
(``Outage.writer_failed``): the batch and every later item go to a separate
``…-writer-error.jsonl`` spool file.

A stop (SIGTERM, Ctrl-C) is noticed by ``watch_for_stop``, a task that waits for nothing else:
a flush waits for the write in progress, which may be retrying a lost database, and only a stop
cuts that short.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from scrapy.crawler import Crawler

from scrapers import metrics
from scrapers.pipelines.spool import Spool

logger = logging.getLogger(__name__)

SPOOLED_STAT = "database/items_spooled"
LOST_STAT = "database/items_lost"
UNAVAILABLE = "database unavailable"
WRITER_ERROR = "writer error"
# How often a stop is looked for.
TICK = 0.25


class Abandoned(Exception):
    """A call to the database did not finish in time after a stop."""


class Outage:
    """The pipeline's outage state and its spool files, one per reason.

    ``destination`` says where the next batch goes; ``spool`` keeps a batch on disk, counted;
    ``close`` closes the files and says what they hold.
    """

    def __init__(self, crawler: Crawler, *, spool_dir: Path, probe_interval: float) -> None:
        self.crawler = crawler
        self.spool_dir = spool_dir
        self.probe_interval = probe_interval
        self.active = False  # the database is unavailable: batches are spooled
        self.failed = False  # a writer error: nothing more goes to the database
        self._spools: dict[str, Spool] = {}
        self._probe_task: asyncio.Task[None] | None = None

    @property
    def spool_path(self) -> Path | None:
        """The spool file of items kept because the database was unavailable, if any."""
        spool = self._spools.get(UNAVAILABLE)
        return spool.path if spool is not None else None

    @property
    def destination(self) -> str | None:
        """The reason of the spool the next batch goes to; ``None``: the database."""
        if self.failed:
            return WRITER_ERROR
        return UNAVAILABLE if self.active else None

    def begin(self, why: str, ping: Callable[[], Awaitable[bool]], stopping: asyncio.Event) -> None:
        """Enter the outage (once); until ``stopping`` is set, ask ``ping`` every
        ``probe_interval`` seconds whether the database answers again."""
        if self.active:
            return
        self.active = True
        logger.error(
            "The database is unavailable (%s). Items are spooled as they come until it answers"
            " again; it is probed every %.0f s.",
            why,
            self.probe_interval,
        )
        if not stopping.is_set():
            self._probe_task = asyncio.get_running_loop().create_task(self._probe(ping, stopping))

    def writer_failed(self) -> None:
        """From now on every batch goes to the writer-error spool."""
        self.failed = True

    def stop_probing(self) -> None:
        if self._probe_task is not None:
            self._probe_task.cancel()

    async def _probe(self, ping: Callable[[], Awaitable[bool]], stopping: asyncio.Event) -> None:
        """Leave the outage once the database answers (not once stopping: then all is spooled)."""
        while self.active and not stopping.is_set():
            await asyncio.sleep(self.probe_interval)
            try:
                answered = await ping()
            except Abandoned:
                return
            if answered:
                self.active = False
                logger.warning(
                    "The database answers again; new items are stored. Replay the %d items"
                    " spooled to %s with the importer.",
                    self._spools[UNAVAILABLE].count,
                    self.spool_path,
                )

    async def spool(self, items: list[Any], reason: str) -> None:
        """Keep ``items`` in the spool file of ``reason``, on a thread (fsync blocks)."""
        spool = self._spool_for(reason)
        try:
            await asyncio.to_thread(spool.append, items)
        except OSError as error:
            # Nowhere left to keep them: say exactly how many are lost, and fail the crawl.
            where = spool.path or spool.directory
            logger.critical(
                "%d items LOST (%s): cannot write %s: %s", len(items), reason, where, error
            )
            if self.crawler.stats is not None:
                self.crawler.stats.inc_value(LOST_STAT, len(items))
            raise
        self._count_spooled(spool, len(items), reason)

    def spool_unflushed(self, items: list[Any]) -> None:
        """Keep what a crawl stopped by force left in the pipeline, at once, and close."""
        if items:
            reason = self.destination or UNAVAILABLE
            spool = self._spool_for(reason)
            spool.append(items)
            logger.error("Forced shutdown before the pipeline could flush")
            self._count_spooled(spool, len(items), reason)
        self.close()

    def close(self) -> None:
        """Close the spool files, saying what each holds."""
        for reason, spool in self._spools.items():
            if spool.close():
                logger.error(
                    "%d items were not stored (%s) and are in %s; the crawl exits with status 1",
                    spool.count,
                    reason,
                    spool.path,
                )

    def _spool_for(self, reason: str) -> Spool:
        if reason not in self._spools:
            suffix = "-writer-error" if reason == WRITER_ERROR else ""
            spider = self.crawler.spider
            name = spider.name if spider is not None else "items"
            self._spools[reason] = Spool(self.spool_dir, name, suffix)
        return self._spools[reason]

    def _count_spooled(self, spool: Spool, count: int, reason: str) -> None:
        metrics.ITEMS_SPOOLED.inc(count)
        stats = self.crawler.stats
        if stats is not None:
            stats.inc_value(SPOOLED_STAT, count)
            stats.inc_value(f"{SPOOLED_STAT}/{reason.replace(' ', '_')}", count)
        # The first batch of a file is an ERROR that says how to replay it; the rest are logged
        # at DEBUG (the stats count them), and ``close`` sums up.
        first = spool.count == count
        logger.log(
            logging.ERROR if first else logging.DEBUG,
            "%s: %d items spooled to %s (%d in that file)%s",
            reason.capitalize(),
            count,
            spool.path,
            spool.count,
            ". Replay them with: python scripts/import_tracks.py --format jsonl FILE"
            if first
            else "",
        )


async def watch_for_stop(crawler: Crawler, on_stop: Callable[[], None]) -> None:
    """Call ``on_stop`` within ``TICK`` seconds of the crawl stopping (SIGTERM, Ctrl-C)."""
    while crawler.crawling:
        await asyncio.sleep(TICK)
    on_stop()
