"""Downloader middleware that counts the pages Scrapy dropped for being larger than
``DOWNLOAD_MAXSIZE``.

The project sizes ``DOWNLOAD_MAXSIZE`` for the site (its largest real tracklist pages are a few
hundred KiB), so a crawl's memory stays bounded whatever a server sends. Scrapy's download
handler cancels such a download (from its ``Content-Length``, or once the bytes read pass the
limit) and logs it; the page is then lost to the crawl, so it is also counted in
``crawl_pages_too_large_total`` and logged with the setting that dropped it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy.exceptions import DownloadCancelledError, IgnoreRequest

from scrapers.metrics import CRAWL_PAGES_TOO_LARGE

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


class PageSizeMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.maxsize = crawler.settings.getint("DOWNLOAD_MAXSIZE")

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PageSizeMiddleware:
        return cls(crawler)

    def process_exception(self, request: Request, exception: Exception) -> None:
        if not isinstance(exception, DownloadCancelledError):
            return
        maxsize = request.meta.get("download_maxsize", self.maxsize)
        CRAWL_PAGES_TOO_LARGE.inc()
        self.crawler.stats.inc_value("download/pages_too_large")
        logger.warning(
            "Page larger than DOWNLOAD_MAXSIZE (%d bytes), dropped: %s", maxsize, request.url
        )
        raise IgnoreRequest(f"larger than DOWNLOAD_MAXSIZE ({maxsize} bytes)")
