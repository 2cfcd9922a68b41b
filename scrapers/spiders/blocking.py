"""Downloader middleware that keeps the site's non-content pages out of the data.

1001tracklists answers an over-eager client with pages that look like a tracklist (same title,
same canonical URL) but hold no rows: a "please wait, you will be forwarded" interstitial, an
"IP limited due to overuse" page, a captcha, or "page does not exist". Each one is counted in
``crawl_blocked_pages_total{kind}`` and logged with its URL, and never reaches the spider.

Throttling pages (interstitial, IP limit, captcha) are retried: the whole download slot of the
site backs off exponentially (``BLOCKED_BACKOFF_BASE`` doubling up to ``BLOCKED_BACKOFF_MAX``
seconds between requests), so the retry and every other request wait. After
``BLOCKED_PAGES_MAX_IN_ROW`` throttling pages in a row the crawl stops with reason
``blocked_pages_in_a_row`` instead of hammering the site. Missing and empty pages are dropped
without retry: asking again would not make them exist.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.extensions.httpcache import DummyPolicy
from scrapy.http import HtmlResponse
from scrapy.utils.defer import deferred_from_coro

from scrapers.crawl.frontier import BACKOFF_SIGNAL
from scrapers.metrics import CRAWL_BLOCKED_PAGES
from scrapers.settings_check import seconds, whole_number
from scrapers.spiders.parsing import BLOCK_KINDS, CONTENT_KINDS, SOURCE, PageKind, classify_page

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

PAGE_KIND_META = "page_kind"  # request.meta key: the kind this middleware found
CLOSE_REASON = "blocked_pages_in_a_row"

INCOMPLETE_STAT = "incomplete_pages"


def cut_short(response: HtmlResponse) -> bool:
    """A successful answer from the site whose document stops before ``</html>``: the origin
    died mid-page while the length still matched. Every page the site serves ends with it.
    Saved pages (``file://``) are read as they are."""
    return (
        response.url.startswith(("http://", "https://"))
        and 200 <= response.status < 300
        and b"</html>" not in response.body[-1024:].lower()
    )


class BlockedPageMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        self.crawler = crawler
        # A value that cannot be used stops the crawl (InvalidSetting), never silently clamped.
        self.max_in_row = whole_number(
            "BLOCKED_PAGES_MAX_IN_ROW", settings.get("BLOCKED_PAGES_MAX_IN_ROW"), minimum=1
        )
        self.retry_times = whole_number(
            "BLOCKED_PAGE_RETRY_TIMES", settings.get("BLOCKED_PAGE_RETRY_TIMES"), minimum=0
        )
        self.backoff_base = seconds(
            "BLOCKED_BACKOFF_BASE", settings.get("BLOCKED_BACKOFF_BASE"), allow_zero=True
        )
        self.backoff_max = seconds(
            "BLOCKED_BACKOFF_MAX", settings.get("BLOCKED_BACKOFF_MAX"), allow_zero=True
        )
        self.base_delay = settings.getfloat("DOWNLOAD_DELAY")
        self.autothrottle = settings.getbool("AUTOTHROTTLE_ENABLED")
        self.in_row = 0
        self.stopping = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BlockedPageMiddleware:
        if getattr(crawler.spider, "source", None) != SOURCE:
            raise NotConfigured("block pages are 1001tracklists' own")
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        if self.stopping:
            raise IgnoreRequest(f"crawl stopping after blocked pages: {request.url}")

    def process_response(self, request: Request, response: Response) -> Request | Response:
        if not isinstance(response, HtmlResponse) or request.url.endswith("/robots.txt"):
            return response
        if cut_short(response):
            return self._cut_short(request)
        kind = classify_page(response.selector.root)
        request.meta[PAGE_KIND_META] = kind
        if kind in CONTENT_KINDS:
            self._content_seen(request)
            return response
        if kind == PageKind.EMPTY and not 200 <= response.status < 300:
            return response  # an HTTP error page: RetryMiddleware and HttpError handle those
        CRAWL_BLOCKED_PAGES.labels(kind=kind.value).inc()
        self.crawler.stats.inc_value(f"blocked_pages/{kind.value}")
        if kind not in BLOCK_KINDS:
            logger.warning("Non-content page (%s), dropped: %s", kind.value, request.url)
            raise IgnoreRequest(f"{kind.value} page: {request.url}")
        return self._blocked(request, kind)

    def _cut_short(self, request: Request) -> Request:
        """Retried as a failed download is: stored, its rows would stand for the whole set, and
        a set stored whole is not fetched again."""
        self.crawler.stats.inc_value(INCOMPLETE_STAT)
        retry = get_retry_request(request, spider=self.crawler.spider, reason="incomplete_page")
        if retry is None:
            logger.error("Incomplete page (stops before </html>), retries spent: %s", request.url)
            raise IgnoreRequest(f"incomplete page: {request.url}")
        logger.warning("Incomplete page (stops before </html>), retrying: %s", request.url)
        return retry

    def _blocked(self, request: Request, kind: PageKind) -> Request:
        self.in_row += 1
        logger.warning("Blocked page (%s), %d in a row: %s", kind.value, self.in_row, request.url)
        if self.in_row >= self.max_in_row:
            self._stop(request, kind)
            raise IgnoreRequest(f"crawl stopping after {self.in_row} blocked pages")
        delay = min(self.backoff_max, self.backoff_base * 2 ** (self.in_row - 1))
        self._set_slot_delay(request, delay, only_raise=True)
        # Other workers of a shared frontier back off too (scrapers.crawl.frontier).
        self.crawler.signals.send_catch_log(BACKOFF_SIGNAL, request=request, delay=delay)
        retry = get_retry_request(
            request,
            spider=self.crawler.spider,
            reason=f"blocked_{kind.value}",
            max_retry_times=self.retry_times,
        )
        if retry is None:
            raise IgnoreRequest(f"still a {kind.value} page after {self.retry_times} retries")
        logger.info("Retrying %s; every request to the site now waits %.1f s", request.url, delay)
        return retry

    def _stop(self, request: Request, kind: PageKind) -> None:
        if self.stopping:
            return
        self.stopping = True
        logger.error(
            "Stopping the crawl: %d non-content pages in a row (last: %s at %s). The site is "
            "throttling this client; wait before crawling again, or raise DOWNLOAD_DELAY / "
            "BLOCKED_BACKOFF_BASE.",
            self.in_row,
            kind.value,
            request.url,
        )
        deferred_from_coro(self.crawler.engine.close_spider_async(reason=CLOSE_REASON))

    def _content_seen(self, request: Request) -> None:
        if self.in_row and not self.autothrottle:
            self._set_slot_delay(request, self.base_delay, only_raise=False)
        self.in_row = 0

    def _set_slot_delay(self, request: Request, delay: float, *, only_raise: bool) -> None:
        """Space out every request to the site, not just the retry (AutoThrottle decays it)."""
        if not self.crawler.crawling:  # a response handed in by hand, outside a crawl
            return
        downloader = self.crawler.engine.downloader
        slot = downloader.slots.get(downloader.get_slot_key(request))
        if slot is not None and (not only_raise or delay > slot.delay):
            slot.delay = delay


class ContentOnlyCachePolicy(DummyPolicy):
    """``HTTPCACHE_POLICY`` for development re-runs: stores every page except block pages.

    The cache sits nearer the downloader than the middleware above, so with Scrapy's own policy
    an interstitial would be stored and then replayed on every later run.
    """

    def should_cache_response(self, response: Response, request: Request) -> bool:
        if not super().should_cache_response(response, request):
            return False
        if not isinstance(response, HtmlResponse):
            return True
        return classify_page(response.selector.root) not in BLOCK_KINDS
