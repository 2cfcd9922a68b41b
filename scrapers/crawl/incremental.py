"""Spider middleware of an incremental crawl: known tracklists are never requested again.

For each page the spider read, it sees the whole output of the callback:

- the tracklist links of a listing page are looked up in the catalogue in one query (off the
  reactor thread: psycopg2 blocks); a known tracklist that is not due for a refresh
  (``scrapers.crawl.refresh``) is dropped before it is requested, and counted in
  ``crawl_tracklists_skipped_total{reason}`` and the stat ``tracklists/skipped/<reason>``;
- a tracklist page's setlist item gets the page's digest and row count and is handed on after
  the page's rows, so that storing it marks the page as read whole. A refreshed page whose
  digest equals the stored one yields only that setlist item: its rows are not written again.

Enabled when the database pipeline is (what is "known" is what is stored) and the spider is a
``scrapers.crawl.source.TracklistSource``: its ``source`` and ``tracklist_id`` say which set a
link leads to.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from itemadapter import ItemAdapter
from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.utils.defer import deferred_from_coro

from scrapers import metrics
from scrapers.crawl.refresh import RefreshPolicy, content_hash
from scrapers.crawl.source import TracklistSource
from scrapers.db.known_setlists import KnownSetlists
from scrapers.db.server.connection import resolve_database_url
from scrapers.db.server.migrations import SchemaTooOld
from scrapers.db.write.locks import LockWaitLog
from scrapers.db.write.records import is_setlist
from scrapers.items import SetlistItem
from scrapers.metrics import RefreshOutcome

logger = logging.getLogger(__name__)

DATABASE_PIPELINE = "scrapers.pipelines.database_pipeline.DatabasePipeline"
STORED_HASH_META = "stored_content_hash"  # request.meta: the digest stored for a due page
SCHEMA_CLOSE_REASON = "database_schema_outdated"


class CrawlStopping(Exception):
    """Raised from a lock wait to abandon a lookup: the crawl is stopping."""


class IncrementalCrawlMiddleware:
    def __init__(self, crawler: Crawler, spider: TracklistSource, policy: RefreshPolicy) -> None:
        self.crawler = crawler
        self.spider = spider
        self.policy = policy
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="known-setlists")
        self._known: KnownSetlists | None = None
        self._wait_log = LockWaitLog(logger, "The lookup of known tracklists")

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> IncrementalCrawlMiddleware:
        if crawler.settings.getdict("ITEM_PIPELINES").get(DATABASE_PIPELINE) is None:
            raise NotConfigured("nothing is stored, so nothing is known")
        spider = crawler.spider
        if not isinstance(spider, TracklistSource):
            raise NotConfigured("the spider does not say which set a link leads to")
        policy = RefreshPolicy.from_settings(crawler.settings, getattr(spider, "refresh", None))
        middleware = cls(crawler, spider, policy)
        crawler.signals.connect(middleware.spider_closed, signal=signals.spider_closed)
        logger.info("Incremental crawl: refresh=%s", policy.mode)
        return middleware

    async def process_spider_output(
        self, response: Response, result: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        output: list[Any] = []
        failure: BaseException | None = None
        try:
            async for entry in result:
                output.append(entry)
        except Exception as error:  # CloseSpider("max_pages") after a page: keep its output
            failure = error
        for entry in await self._requests_to_keep(output):
            yield entry
        for entry in self._page_items(response, output):
            yield entry
        if failure is not None:
            raise failure

    async def _requests_to_keep(self, output: list[Any]) -> list[Any]:
        links = {}
        for entry in output:
            if isinstance(entry, Request):
                source_id = self.spider.tracklist_id(entry.url)
                if source_id:
                    links[id(entry)] = source_id
        if not links:
            return [entry for entry in output if isinstance(entry, Request)]
        stored, now = await self._lookup(sorted(set(links.values())))
        self.crawler.stats.inc_value("tracklists/known_lookups")  # one query per listing page
        kept = []
        for entry in output:
            if not isinstance(entry, Request):
                continue
            known = stored.get(links.get(id(entry), ""))
            if known is not None:
                reason = self.policy.skip_reason(known, now)
                if reason is not None:
                    metrics.CRAWL_TRACKLISTS_SKIPPED.labels(reason).inc()
                    self.crawler.stats.inc_value(f"tracklists/skipped/{reason}")
                    continue
                entry.meta[STORED_HASH_META] = known.content_hash
                self.crawler.stats.inc_value("tracklists/due")
            kept.append(entry)
        return kept

    def _page_items(self, response: Response, output: list[Any]) -> list[Any]:
        items = [entry for entry in output if not isinstance(entry, Request)]
        setlists = [item for item in items if is_setlist(ItemAdapter(item))]
        if len(setlists) != 1:
            return items
        [setlist] = setlists
        rows = [item for item in items if item is not setlist]
        adapter = ItemAdapter(setlist)
        digest = content_hash(adapter.asdict(), (ItemAdapter(row).asdict() for row in rows))
        indexes = [ItemAdapter(row).get("row_index") for row in rows]
        adapter["content_hash"] = digest
        adapter["row_count"] = max((i for i in indexes if isinstance(i, int)), default=-1) + 1
        if digest == response.meta.get(STORED_HASH_META):
            metrics.CRAWL_TRACKLISTS_REFRESHED.labels(RefreshOutcome.UNCHANGED).inc()
            self.crawler.stats.inc_value("tracklists/refresh_unchanged")
            # Only "checked now": the stored rows are the page's rows already.
            return [SetlistItem(source=adapter["source"], source_id=adapter["source_id"],
                                content_hash=digest,
                                fetched_at=adapter.get("fetched_at"))]  # fmt: skip
        if STORED_HASH_META in response.meta:
            metrics.CRAWL_TRACKLISTS_REFRESHED.labels(RefreshOutcome.CHANGED).inc()
            self.crawler.stats.inc_value("tracklists/refresh_changed")
        return [*rows, setlist]

    async def _lookup(self, source_ids: list[str]) -> Any:
        loop = asyncio.get_running_loop()
        if self._known is None:
            url = await loop.run_in_executor(
                self._executor, resolve_database_url, self.crawler.settings
            )
            self._known = KnownSetlists(url, self._lookup_waits)
        try:
            return await loop.run_in_executor(
                self._executor, self._known.lookup, self.spider.source, source_ids
            )
        except CrawlStopping:
            return {}, None  # nothing is fetched any more: which links are known is moot
        except SchemaTooOld as error:
            logger.error("The crawl stops: %s", error)
            deferred_from_coro(self.crawler.engine.close_spider_async(reason=SCHEMA_CLOSE_REASON))
            return {}, None

    def _lookup_waits(self, seconds: float, holders: int) -> None:
        """The lookup waits for other sessions' locks (a bulk import): say so, and give up once
        the crawl is stopping, so that SIGTERM is not held up until the import commits."""
        self._wait_log(seconds, holders)
        if not self.crawler.crawling:
            raise CrawlStopping

    def spider_closed(self) -> None:
        if self._known is not None:
            self._executor.submit(self._known.close)
        self._executor.shutdown(wait=True)
