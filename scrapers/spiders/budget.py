"""Spider middleware that spends ``max_pages`` on the tracklists a crawl actually requests.

The spider marks a listing page's tracklist links and its next-page request; this middleware
sits nearer the engine than the incremental one, so it sees the links that are left once known
tracklists are dropped. It passes links while the budget lasts and follows the next listing page
only if budget remains: a crawl over listings it mostly knows pages on to the ones it does not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import Response

LISTING_LINK_META = "listing_link"  # a tracklist link read from a listing page
NEXT_LISTING_META = "next_listing"  # the request for a listing's next page


class ListingBudgetMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

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
        if next_listing is not None and spider.wants_more_tracklists():
            yield next_listing
