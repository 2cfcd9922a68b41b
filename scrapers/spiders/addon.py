"""The project's crawl middlewares, as a Scrapy add-on (``ADDONS`` in ``scrapers/settings.py``).

An add-on rather than ``DOWNLOADER_MIDDLEWARES`` / ``SPIDER_MIDDLEWARES`` in the settings: it
adds each middleware to whatever those settings hold, so ``-s SPIDER_MIDDLEWARES=…`` adds a
middleware of one's own without dropping these. Each middleware decides for itself whether the
running spider needs it (``NotConfigured`` otherwise): a new spider needs no edit here.
"""

from __future__ import annotations

from scrapy.settings import BaseSettings

from scrapers.crawl.incremental import IncrementalCrawlMiddleware
from scrapers.spiders.blocking import BlockedPageMiddleware
from scrapers.spiders.budget import ListingBudgetMiddleware
from scrapers.spiders.page_size import PageSizeMiddleware

DOWNLOADER_MIDDLEWARES = {
    BlockedPageMiddleware: 560,  # before RetryMiddleware (550) sees a 429/503 block page
    PageSizeMiddleware: 540,  # sees a cancelled download before RetryMiddleware (550)
}
SPIDER_MIDDLEWARES = {
    IncrementalCrawlMiddleware: 950,  # nearest the spider: sees the callback's whole output
    ListingBudgetMiddleware: 940,  # after the incremental one: counts only links still wanted
}


class CrawlMiddlewares:
    """Enables the block-page, page-size, incremental and listing-budget middlewares."""

    def update_settings(self, settings: BaseSettings) -> None:
        for name, middlewares in (
            ("DOWNLOADER_MIDDLEWARES", DOWNLOADER_MIDDLEWARES),
            ("SPIDER_MIDDLEWARES", SPIDER_MIDDLEWARES),
        ):
            for middleware, priority in middlewares.items():
                settings.setdefault_in_component_priority_dict(name, middleware, priority)
