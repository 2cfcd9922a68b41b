"""A second tracklist site and its spider, to show that a new site needs one module and no
edit in ``scrapers/crawl/``.

``SecondSiteSpider`` implements ``scrapers.crawl.source.TracklistSource`` (``source`` and
``tracklist_id``), and nothing else of the project's: the incremental crawl, the database
pipeline and the listing budget come from the project's settings and add-on. Tests select it with
``SPIDER_MODULES=tests.second_site`` and ``-a start_urls=<SecondSite.url>``.
"""

from __future__ import annotations

import html
import re
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import scrapy
from scrapy.http import Response

from scrapers.items import SetlistItem, TrackItem
from tests.serving import serve_in_background

SOURCE = "second-site"
_SET_PATH = re.compile(r"/sets/(\d+)\.html$")


class SecondSiteSpider(scrapy.Spider):
    name = "second-site"
    source = SOURCE

    def __init__(self, start_urls: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_urls = [start_urls]

    def tracklist_id(self, url: str) -> str | None:
        match = _SET_PATH.search(url)
        return match.group(1) if match else None

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        source_id = self.tracklist_id(response.url)
        if source_id is None:  # the listing
            yield from response.follow_all(css="a.set", callback=self.parse)
            return
        yield SetlistItem(
            source=SOURCE,
            source_id=source_id,
            url=response.url,
            title=response.css("h1::text").get(),
            djs=[],
            genres=[],
            date="2015-06-01",  # long past: a stored set is complete, never due again
        )
        for index, row in enumerate(response.css("li.row")):
            artist, title = row.css("span::text").getall()
            yield TrackItem(
                setlist_source=SOURCE,
                setlist_source_id=source_id,
                row_index=index,
                position=index + 1,
                artist=artist,
                title=title,
                artists=[{"name": artist, "role": "primary"}],
            )


class SecondSite:
    """``sets`` tracklist pages of two rows each behind one listing page, on 127.0.0.1."""

    def __init__(self, sets: int) -> None:
        self.sets = sets
        self.fetches: Counter[str] = Counter()
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with site._lock:
                    site.fetches[self.path] += 1
                body = site.page(self.path)
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write((body or "").encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        serve_in_background(self.server)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def page(self, path: str) -> str | None:
        if path == "/":
            links = "".join(
                f'<a class="set" href="/sets/{n}.html">{n}</a>' for n in range(self.sets)
            )
            return f"<html><body>{links}</body></html>"
        match = _SET_PATH.fullmatch(path)
        if match is None or int(match.group(1)) >= self.sets:
            return None
        number = match.group(1)
        rows = "".join(
            f"<li class='row'><span>Artist {number}</span><span>{html.escape(title)}</span></li>"
            for title in (f"Tune {number}a", f"Tune {number}b")
        )
        return f"<html><body><h1>Set {number}</h1><ul>{rows}</ul></body></html>"

    def set_fetches(self) -> int:
        with self._lock:
            return sum(count for path, count in self.fetches.items() if path.startswith("/sets/"))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
