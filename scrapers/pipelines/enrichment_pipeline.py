"""Enrichment in the crawl: runs before the database pipeline (priority 300 < 800).

Two modes (``ENRICHMENT_MODE``):

* ``deferred`` (default): nothing is looked up; each track without an ISRC is marked
  ``enrichment_status="pending"`` and stored at once, and ``scripts/enrichment_service.py``
  backfills it later. This is Koito's "skip slow lookups during import, backfill later": a crawl
  yields several tracks a second and MusicBrainz answers one request a second.
* ``inline``: each track is looked up now, in a pool of ``ENRICHMENT_CONCURRENCY`` worker
  threads, so the reactor keeps crawling while lookups wait on rate limits. Identical tracks in
  flight at the same time share one lookup; later ones hit the response cache.

Setlist items and unknown or partly unknown rows ("ID - ID", "Artist - ID") pass untouched. A
lookup that raises never loses the item: it is stored marked ``pending``.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from itemadapter import ItemAdapter
from scrapy.crawler import Crawler

from scrapers import metrics
from scrapers.db.server.connection import resolve_database_url
from scrapers.db.write.records import is_setlist
from scrapers.enrichment.cache import ResponseCache
from scrapers.enrichment.config import EnrichmentConfig
from scrapers.enrichment.enricher import Enricher, EnrichmentResult, TrackQuery
from scrapers.enrichment.matching import FIELDS, valid_duration_ms
from scrapers.enrichment.ratelimit import (
    RateLimitUnavailableError,
    SharedRateLimiter,
    shared_limiters,
)
from scrapers.identity import is_unknown_text, normalize_isrc, title_key
from scrapers.statuses import EnrichmentStatus

logger = logging.getLogger(__name__)


class EnrichmentPipeline:
    def __init__(self, crawler: Crawler, config: EnrichmentConfig) -> None:
        self.crawler = crawler
        self.config = config
        self._executor: ThreadPoolExecutor | None = None
        self._cache: ResponseCache | None = None
        self._enricher: Enricher | None = None
        self._limiters: dict[str, SharedRateLimiter] = {}
        self._in_flight: dict[tuple[str, str | None], asyncio.Future[EnrichmentResult]] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> EnrichmentPipeline:
        return cls(crawler, EnrichmentConfig.from_settings(crawler.settings))

    def open_spider(self) -> None:
        if self.config.mode != "inline":
            return
        self._executor = ThreadPoolExecutor(
            max_workers=self.config.concurrency, thread_name_prefix="enrichment"
        )
        url = resolve_database_url(self.crawler.settings)
        self._cache = ResponseCache(url, max_connections=self.config.concurrency)
        # The sources' limits are global: shared with the enrichment service's workers and
        # every other crawl (in Redis with REDIS_URL, else in PostgreSQL).
        self._limiters = shared_limiters(self.config, url)
        self._enricher = Enricher.from_config(self.config, self._cache, self._limiters)
        logger.info(
            "Enrichment inline from %s, %d lookups at a time",
            ", ".join(self.config.enabled_sources()),
            self.config.concurrency,
        )

    def close_spider(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self._cache is not None:
            self._cache.close()
        for limiter in self._limiters.values():
            limiter.close()

    async def process_item(self, item: Any) -> Any:
        adapter = ItemAdapter(item)
        if not _is_real_track(adapter):
            return item
        isrc = normalize_isrc(adapter.get("isrc"))
        if self.config.mode != "inline":
            if isrc is None:
                adapter["enrichment_status"] = EnrichmentStatus.PENDING
                self._count("deferred")
            return item
        known = {name: adapter.get(name) for name in FIELDS if adapter.get(name) is not None}
        # Only validated values steer matching; the writer judges the rest.
        known.update(isrc=isrc, duration_ms=valid_duration_ms(adapter.get("duration_ms")))
        query = TrackQuery(
            str(adapter["artist"]),
            str(adapter["title"]),
            {name: value for name, value in known.items() if value is not None},
        )
        try:
            result = await self._lookup(query)
        except RateLimitUnavailableError as error:
            # The source is unavailable now, not the track's fault: pending, for the backfill.
            metrics.ENRICHMENT_RATE_LIMIT_UNAVAILABLE.labels(error.source).inc()
            logger.warning("%s: %s - %s stored pending", error, query.artist, query.title)
            adapter["enrichment_status"] = EnrichmentStatus.PENDING
            self._count("rate_limit_unavailable")
            return item
        except Exception:
            # Never lose the item for a lookup: store it now, the backfill tries again.
            logger.exception("Enrichment failed for %s - %s", query.artist, query.title)
            adapter["enrichment_status"] = EnrichmentStatus.PENDING
            self._count("error")
            return item
        _apply(adapter, result)
        self._count(result.status)
        return item

    def _lookup(self, query: TrackQuery) -> asyncio.Future[EnrichmentResult]:
        """One lookup per distinct track in flight; identical items await the same one."""
        assert self._executor is not None and self._enricher is not None
        key = (title_key(query.artist, query.title), query.isrc)
        future = self._in_flight.get(key)
        if future is None:
            future = asyncio.get_running_loop().run_in_executor(
                self._executor, self._enricher.enrich, query
            )
            self._in_flight[key] = future
            future.add_done_callback(lambda _: self._in_flight.pop(key, None))
        return future

    def _count(self, outcome: str) -> None:
        if self.crawler.stats is not None:
            self.crawler.stats.inc_value(f"enrichment/{outcome}")


def _is_real_track(adapter: ItemAdapter) -> bool:
    """A track row naming a real recording: no setlist, no "ID - ID", no "Artist - ID"."""
    fields = adapter.asdict()
    if is_setlist(fields) or adapter.get("is_unknown") or adapter.get("is_partial_id"):
        return False
    artist, title = adapter.get("artist"), adapter.get("title")
    if not isinstance(artist, str) or not isinstance(title, str):
        return False
    return not (is_unknown_text(artist) or is_unknown_text(title))


def _apply(adapter: ItemAdapter, result: EnrichmentResult) -> None:
    for name, value in result.values.items():
        adapter[name] = value
    metadata = adapter.get("metadata")
    adapter["metadata"] = {
        **(metadata if isinstance(metadata, dict) else {}),
        "enrichment": result.metadata(),
    }
    adapter["enrichment_status"] = result.status
