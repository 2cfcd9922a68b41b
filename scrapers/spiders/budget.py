"""Spider middleware that spends a crawl's budgets: ``max_pages`` on the tracklists it actually
requests, and ``CRAWL_MAX_LISTING_PAGES`` on the listing pages it follows.

The spider marks a listing page's tracklist links and its next-page request; this middleware
sits nearer the engine than the incremental one, so it sees the links that are left once known
tracklists are dropped. It passes links while the budget lasts and follows the next listing page
only if budget remains: a crawl over listings it mostly knows pages on to the ones it does not.

Listing pages are bounded on their own: a listing whose "next" link is a fresh URL on every
answer (``?r=…``, a loop back to its first page) would otherwise be followed for ever. The next
page past ``CRAWL_MAX_LISTING_PAGES`` followed in one crawl (per worker) is dropped, counted in
``crawl_listing_pages_not_followed_total`` and logged (a WARNING the first time).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import Response

from scrapers.metrics import CRAWL_LISTING_PAGES_NOT_FOLLOWED
from scrapers.settings_check import whole_number

logger = logging.getLogger(__name__)

LISTING_LINK_META = "listing_link"  # a tracklist link read from a listing page
NEXT_LISTING_META = "next_listing"  # the request for a listing's next page


class ListingBudgetMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.max_listing_pages = whole_number(
            "CRAWL_MAX_LISTING_PAGES",
            crawler.settings.get("CRAWL_MAX_LISTING_PAGES"),
            minimum=1,
        )
        self.listing_pages_followed = 0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ListingBudgetMiddleware:
        return cls(crawler)

    async def process_spider_output(
        self, response: Response, result: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        spider = self.crawler.spider
        next_listing = None
        async for entry in result:
            if isinstance(entry, Request) and entry.meta.get(LISTING_LINK_META):
                if not spider.wants_more_tracklists():
                    continue
                spider.tracklists_requested += 1
            elif isinstance(entry, Request) and entry.meta.get(NEXT_LISTING_META):
                next_listing = entry  # decided once this page's links are counted
                continue
            yield entry
        wanted = next_listing is not None and spider.wants_more_tracklists()
        if wanted and self._may_follow(next_listing):
            yield next_listing

    def _may_follow(self, next_listing: Request) -> bool:
        """Whether the crawl may follow one more listing page."""
        stats = self.crawler.stats
        if self.listing_pages_followed < self.max_listing_pages:
            self.listing_pages_followed += 1
            if stats is not None:
                stats.inc_value("listing/pages_followed")
            return True
        CRAWL_LISTING_PAGES_NOT_FOLLOWED.inc()
        if stats is not None:
            stats.inc_value("listing/pages_not_followed")
        first = stats is None or stats.get_value("listing/pages_not_followed") == 1
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "Not following %s: this crawl followed %d listing pages (CRAWL_MAX_LISTING_PAGES);"
            " a listing that never ends, or raise the setting",
            next_listing.url,
            self.max_listing_pages,
        )
        return False
