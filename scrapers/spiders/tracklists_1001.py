"""``scrapy crawl 1001tracklists``: tracklist pages in, SetlistItem and TrackItem out.

Arguments (``-a name=value``):

- ``start_urls``: comma-separated tracklist, DJ, search or listing URLs; ``file://`` works;
- ``search``: a tracklist search on the site;
- ``dj``: a DJ's slug, as in ``/dj/<slug>/index.html``;
- ``max_pages``: stop after this many tracklist pages;
- ``refresh``: ``due`` (default: ``CRAWL_REFRESH``), ``all`` or ``none``: which tracklists the
  catalogue already holds are fetched again (``scrapers.crawl.refresh``).

``scrapy crawl`` checks them with ``check_arguments`` before the crawl starts. With none of
``start_urls``, ``search`` and ``dj`` the crawl starts from the front page, which lists the newest
tracklists. A crawl whose start URLs are all ``file://`` stays offline: links and next pages
that lead to http(s) are not followed. Reading pages is ``parsing``'s job; keeping block pages
out is ``blocking.BlockedPageMiddleware``'s (enabled with the project's other middlewares by
``scrapers.spiders.addon``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import suppress
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlparse

from lxml import etree
from scrapy.crawler import Crawler
from scrapy.exceptions import CloseSpider
from scrapy.http import FormRequest, Request, Response, TextResponse
from scrapy.settings import BaseSettings

from scrapers.crawl.frontier import FrontierSpider, configure
from scrapers.crawl.refresh import refresh_mode
from scrapers.items import SetlistItem, TrackItem
from scrapers.metrics import CRAWL_BLOCKED_PAGES, CRAWL_DECOY_ROWS, CRAWL_PAGES_TRUNCATED
from scrapers.settings_check import InvalidSetting
from scrapers.spiders.blocking import PAGE_KIND_META
from scrapers.spiders.budget import LISTING_LINK_META, NEXT_LISTING_META
from scrapers.spiders.parsing import (
    MAX_ROWS,
    SOURCE,
    PageKind,
    classify_page,
    parse_listing,
    parse_tracklist,
    tracklist_id_from_url,
)

SEARCH_PATH = "/search/result.php"
SEARCH_TRACKLISTS = "9"  # the search box's "Tracklists" choice
MAX_QUERY_LENGTH = 150  # the site's search box accepts no more
_DJ_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


class TracklistsSpider(FrontierSpider):
    name = "1001tracklists"
    source = SOURCE  # scrapers.crawl.source.TracklistSource

    def __init__(
        self,
        start_urls: str | list[str] | None = None,
        search: str | None = None,
        dj: str | None = None,
        max_pages: str | int | None = None,
        refresh: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.refresh = refresh_mode(refresh)
        self.start_urls = _url_list(start_urls)
        self.search = _search_query(search)
        self.dj = _dj_slug(dj)
        self.max_pages = _max_pages(max_pages)
        # Started from saved files only: never reach out to the live site.
        self.offline = bool(self.start_urls) and not (self.search or self.dj)
        self.offline = self.offline and all(_is_file(url) for url in self.start_urls)
        self.site = ""  # TRACKLISTS_SITE_URL, set by from_crawler
        self.allowed_domains = _hosts(self.start_urls)
        self.tracklist_pages = 0  # tracklist pages read
        self.tracklists_requested = 0  # tracklist links followed from listings

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> TracklistsSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        site = str(crawler.settings.get("TRACKLISTS_SITE_URL") or "").rstrip("/")
        if urlparse(site).scheme not in ("http", "https"):
            raise InvalidSetting("TRACKLISTS_SITE_URL", "an http(s) URL", site)
        spider.site = site
        spider.allowed_domains = _hosts([site, *spider.start_urls])
        return spider

    @classmethod
    def check_arguments(cls, arguments: Mapping[str, Any]) -> None:
        """Refuse a bad ``-a`` value with ValueError before anything starts."""
        for name, check in _ARGUMENT_CHECKS.items():
            if name in arguments:
                check(arguments[name])

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        super().update_settings(settings)
        configure(settings, cls.name)  # with REDIS_URL: a worker of a shared frontier

    def tracklist_id(self, url: str) -> str | None:
        """The tracklist id a link leads to (``scrapers.crawl.source.TracklistSource``)."""
        return tracklist_id_from_url(url)

    async def start(self) -> AsyncIterator[Request]:
        for url in self.start_urls:
            # Asked for by name, so never filtered as off-site (file:// has no host at all).
            yield Request(url, callback=self.parse, meta={"allow_offsite": True})
        if self.search:
            yield self._search_request(self.search, page=None)
        if self.dj:
            yield Request(f"{self.site}/dj/{self.dj}/index.html", callback=self.parse)
        if not (self.start_urls or self.search or self.dj):
            yield Request(f"{self.site}/", callback=self.parse)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        root = response.selector.root if isinstance(response, TextResponse) else None
        if not isinstance(root, etree._Element):  # JSON (a dict), an image, a download
            CRAWL_BLOCKED_PAGES.labels(kind=PageKind.NOT_HTML.value).inc()
            self.crawler.stats.inc_value(f"blocked_pages/{PageKind.NOT_HTML.value}")
            self.logger.warning("Not an HTML page, skipped: %s", response.url)
            return
        kind = response.meta.get(PAGE_KIND_META) or classify_page(root)
        if kind == PageKind.TRACKLIST:
            yield from self.parse_tracklist_page(response)
        elif kind == PageKind.LISTING:
            yield from self.parse_listing_page(response)
        else:
            self.logger.warning("Not a tracklist or listing (%s), skipped: %s", kind, response.url)

    def parse_tracklist_page(self, response: Response) -> Iterator[SetlistItem | TrackItem]:
        parsed = parse_tracklist(response.selector.root, response.url)
        for warning in parsed.warnings:
            self.logger.warning("%s: %s", response.url, warning)
        if parsed.dropped_rows:
            CRAWL_PAGES_TRUNCATED.inc()
            self.crawler.stats.inc_value("tracklist/pages_truncated")
            self.crawler.stats.inc_value("tracklist/rows_dropped", parsed.dropped_rows)
            self.logger.warning(
                "%s: %d rows past the first %d dropped", response.url, parsed.dropped_rows, MAX_ROWS
            )
        if parsed.decoy_rows:
            CRAWL_DECOY_ROWS.inc(parsed.decoy_rows)
            self.crawler.stats.inc_value("tracklist/decoy_rows", parsed.decoy_rows)
            self.logger.warning(
                "%s: %d rows showed a decoy artist; kept the microdata's names",
                response.url,
                parsed.decoy_rows,
            )
        source_id = parsed.setlist["source_id"]
        if not source_id:
            self.logger.warning("%s: no tracklist id in the URL or page, skipped", response.url)
            return
        fetched_at = fetch_time(response)
        yield SetlistItem(**parsed.setlist, fetched_at=fetched_at)
        for row in parsed.rows:
            yield TrackItem(
                setlist_source=SOURCE,
                setlist_source_id=source_id,
                fetched_at=fetched_at,
                **row.item_fields(),
            )
        self.tracklist_pages += 1
        self.crawler.stats.inc_value("tracklist/pages")
        self.crawler.stats.inc_value("tracklist/rows", len(parsed.rows))
        if self.max_pages is not None and self.tracklist_pages >= self.max_pages:
            raise CloseSpider("max_pages")

    def parse_listing_page(self, response: Response) -> Iterator[Request]:
        """Every tracklist link and the next page, marked: ``ListingBudgetMiddleware`` spends
        ``max_pages`` on the links left once known tracklists are dropped."""
        listing = parse_listing(response.selector.root, response.url)
        for url in listing.tracklist_urls:
            if self._may_request(url):
                yield response.follow(url, callback=self.parse, meta={LISTING_LINK_META: True})
        if listing.next_page_url:
            if self._may_request(listing.next_page_url):
                yield response.follow(
                    listing.next_page_url, callback=self.parse, meta={NEXT_LISTING_META: True}
                )
        elif (
            listing.next_search_page
            and listing.search_query
            and self._may_request(self.site + SEARCH_PATH)
        ):
            request = self._search_request(listing.search_query, page=listing.next_search_page)
            request.meta[NEXT_LISTING_META] = True
            yield request

    def _may_request(self, url: str) -> bool:
        """Whether to follow ``url``: an offline crawl (from ``file://``) never goes online."""
        if not self.offline or _is_file(url):
            return True
        self.crawler.stats.inc_value("offline/links_not_followed")
        self.logger.info("Offline crawl (started from file://): not following %s", url)
        return False

    def wants_more_tracklists(self) -> bool:
        return self.max_pages is None or self.tracklists_requested < self.max_pages

    def _search_request(self, query: str, page: int | None) -> FormRequest:
        formdata = {"main_search": query, "search_selection": SEARCH_TRACKLISTS}
        if page is not None:
            formdata["page"] = str(page)
        return FormRequest(self.site + SEARCH_PATH, formdata=formdata, callback=self.parse)


def fetch_time(response: Response) -> str:
    """When the page was fetched, ISO 8601 in UTC: now, or for a page replayed from the HTTP
    cache the time the site answered it (its ``Date``), so that a replay never counts as newer
    than a later crawl."""
    if "cached" in response.flags:
        with suppress(TypeError, ValueError):
            date = response.headers.get(b"Date", b"").decode("latin-1")
            return parsedate_to_datetime(date).astimezone(dt.UTC).isoformat()
    return dt.datetime.now(dt.UTC).isoformat()


def _is_file(url: str) -> bool:
    return urlparse(url).scheme == "file"


def _hosts(urls: list[str]) -> list[str]:
    hosts = {urlparse(url).hostname for url in urls}
    return sorted(host for host in hosts if host)


def _url_list(value: str | list[str] | None) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value or [])
    urls = [item.strip() for item in items if item.strip()]
    for url in urls:
        if urlparse(url).scheme not in ("http", "https", "file"):
            raise ValueError(f"start_urls: not an http(s) or file URL: {url!r}")
    return urls


def _search_query(value: str | None) -> str | None:
    query = " ".join((value or "").split())
    if len(query) > MAX_QUERY_LENGTH:
        raise ValueError(f"search: at most {MAX_QUERY_LENGTH} characters, got {len(query)}")
    return query or None


def _dj_slug(value: str | None) -> str | None:
    slug = (value or "").strip().lower()
    if slug and not _DJ_SLUG.match(slug):
        raise ValueError(f"dj: not a DJ slug as in /dj/<slug>/index.html: {value!r}")
    return slug or None


def _max_pages(value: str | int | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"max_pages: not a whole number: {value!r}") from None
    if number < 1:
        raise ValueError(f"max_pages: must be at least 1, got {number}")
    return number


_ARGUMENT_CHECKS: dict[str, Callable[[Any], object]] = {
    "start_urls": _url_list,
    "search": _search_query,
    "dj": _dj_slug,
    "max_pages": _max_pages,
    "refresh": refresh_mode,
}
