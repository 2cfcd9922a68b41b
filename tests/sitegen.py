"""A generated 1001tracklists look-alike served on 127.0.0.1, for crawl tests and the benchmark.

``GeneratedSite(count)`` makes ``count`` tracklist pages in the site's markup (the parts
``scrapers.spiders.parsing`` reads) behind paginated listings, ``/tracklists/index.html``,
``index2.html``, …, ``per_page`` links each. Every request is logged with its monotonic time,
whichever worker sent it, so tests compare times across all workers.

Pages are built from ``Tracklist`` objects that a test may change between crawls (an "ID" row
identified, a row added), as the site's community does.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.serving import serve_in_background


@dataclass
class Row:
    artist: str | None  # None: an "ID - ID" row
    title: str | None
    track_id: str | None = None
    cue_seconds: int = 0


@dataclass
class Tracklist:
    source_id: str
    title: str
    set_date: dt.date
    rows: list[Row] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/tracklist/{self.source_id}/generated-set-{self.source_id}.html"


def tracklist_id(number: int) -> str:
    return f"g{number:06d}x"


def make_tracklists(
    count: int, *, recent: int = 0, today: dt.date | None = None
) -> list[Tracklist]:
    """``count`` sets of 6 to 9 rows, every fourth with an "ID - ID" row; the first ``recent``
    are dated ``today``, the rest years ago."""
    today = today or dt.date.today()
    sets = []
    for number in range(count):
        date = today if number < recent else dt.date(2019, 1, 1) + dt.timedelta(days=number)
        rows = []
        for index in range(6 + number % 4):
            if number % 4 == 0 and index == 2:
                rows.append(Row(None, None, cue_seconds=index * 180))
                continue
            track = (number * 7 + index * 13) % 500  # tracks repeat across sets
            rows.append(
                Row(f"Artist {track % 61}", f"Track {track}", f"t{track:05d}z", index * 180)
            )
        sets.append(
            Tracklist(tracklist_id(number), f"DJ {number % 17} @ Venue {number}", date, rows)
        )
    return sets


def tracklist_page(tracklist: Tracklist) -> bytes:
    rows = "\n".join(_row(index, row) for index, row in enumerate(tracklist.rows))
    count = len(tracklist.rows)
    title = escape(tracklist.title)
    date = tracklist.set_date.isoformat()
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} {date}</title>
<meta name="description" content="Tracklist / playlist for {title} with {count} House tracks.">
<link rel="canonical" href="https://www.1001tracklists.com{tracklist.path}">
</head><body><div id="pageRoot">
<h1> <a href="/dj/generated/index.html">Generated DJ</a> @ {title} {date} </h1>
<div id="tlTab" itemscope itemtype="http://schema.org/MusicPlaylist"
 data-id="{tracklist.source_id}">
<meta itemprop="name" content="{title} {date}"><meta itemprop="datePublished" content="{date}">
<meta itemprop="genre" content="House">
{rows}
</div></div></body></html>""".encode()


def _row(index: int, row: Row) -> str:
    cue = f"{row.cue_seconds // 60:02d}:{row.cue_seconds % 60:02d}" if row.cue_seconds else ""
    head = (
        f'<div class="bPlay"> <input id="tlp{index}_cue_seconds" type="hidden"'
        f' value="{row.cue_seconds}"> <span id="tlp{index}_tracknumber_value" class="fontXL">'
        f' {index + 1:02d} </span> <div class="cue noWrap action mt5">{cue}</div> </div>'
    )
    if row.artist is None:
        return (
            f'<div class="tlpTog bItm tlpItem" data-trno="{index}"> {head} <div class="bCont tl">'
            f'<div class="fontL"> <span class="trackValue notranslate redTxt">'
            f'<span class="redTxt">ID</span><span class="redTxt"> - </span>'
            f'<span class="redTxt"><span>ID</span></span> </span> </div> </div> </div>'
        )
    artist, title = escape(row.artist), escape(row.title or "")
    return (
        f'<div class="tlpTog bItm tlpItem" data-trno="{index}" data-trackid="{row.track_id}">'
        f' {head} <div class="bCont tl"> <div class="fontL" itemprop="tracks" itemscope'
        f' itemtype="http://schema.org/MusicRecording"> <meta itemprop="name"'
        f' content="{artist} - {title}"><meta itemprop="byArtist" content="{artist}">'
        f'<meta itemprop="url" content="/track/{row.track_id}/x/index.html">'
        f' <span class="trackValue notranslate blueTxt"> <span class="blueTxt">{artist}</span>'
        f'<span> - </span><span class="blueTxt"><span>{title}</span></span> </span>'
        f" </div> </div> </div>"
    )


def listing_page(
    tracklists: list[Tracklist], page: int, per_page: int, noise: str | None = None
) -> bytes | None:
    """Listing page ``page``. With ``noise``, every link carries ``?r=<noise>`` and the last
    page's "next" leads back to the first: an endless listing of fresh URLs, as a hostile or
    broken site can serve."""
    chunk = tracklists[(page - 1) * per_page : page * per_page]
    if not chunk and page > 1:
        return None
    query = f"?r={noise}" if noise else ""
    links = "\n".join(
        f'<div class="bItm action oItm" data-id="{t.source_id}"><div class="bCont">'
        f'<div class="bTitle"><a href="{t.path}{query}">{escape(t.title)}</a></div></div></div>'
        for t in chunk
    )
    more = page * per_page < len(tracklists)
    next_link = (
        f'<li><a href="{listing_path(page + 1 if more else 1)}{query}">Next</a></li>'
        if more or noise
        else '<li class="disabled"><a href="#">Next</a></li>'
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Tracklists page {page}</title></head>
<body><div id="pageRoot"><h1>Newest tracklists</h1>
{links}
<ul class="pagination bs"><li class="active"><a href="#">{page}</a></li>{next_link}</ul>
</div></body></html>""".encode()


def listing_path(page: int) -> str:
    return "/tracklists/index.html" if page == 1 else f"/tracklists/index{page}.html"


class GeneratedSite:
    """The site on 127.0.0.1: ``start()``, ``base``, ``requests`` (time, path), ``stop()``."""

    def __init__(self, tracklists: list[Tracklist], per_page: int = 20) -> None:
        self.tracklists = tracklists
        self.per_page = per_page
        self.requests: list[tuple[float, str]] = []
        self.user_agents: list[str] = []  # of each request, in the same order
        self.block_once: dict[str, bytes] = {}  # path -> a block page served once instead
        self.noisy = False  # links carry a fresh ?r= on every answer, the listing never ends
        self._answers = 0
        self._by_path = {tracklist.path: tracklist for tracklist in tracklists}
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def start_url(self) -> str:
        return self.base + listing_path(1)

    def start(self) -> GeneratedSite:
        serve_in_background(self.server)
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        with self._lock:
            return [path for _, path in self.requests]

    def tracklist_fetches(self) -> list[str]:
        return [path.split("/")[2] for path in self.paths() if path.startswith("/tracklist/")]

    def request_log(self) -> list[tuple[float, str, str]]:
        """Every request so far: (monotonic time, path, User-Agent)."""
        with self._lock:
            return [
                (when, path, agent)
                for (when, path), agent in zip(self.requests, self.user_agents, strict=True)
            ]

    def listed_on(self, path: str) -> set[str]:
        """Tracklist ids the listing page ``path`` links to (none for another path)."""
        if not path.startswith("/tracklists/index"):
            return set()
        page = int(path.removeprefix("/tracklists/index").removesuffix(".html") or 1)
        return {t.source_id for t in self.tracklists[(page - 1) * self.per_page :][: self.per_page]}

    def answer(self, path: str) -> bytes | None:
        if path == "/robots.txt":
            return b"User-agent: *\nAllow: /\n"
        if self.noisy:
            path = path.partition("?")[0]
        if path.startswith("/tracklists/index"):
            number = path.removeprefix("/tracklists/index").removesuffix(".html")
            with self._lock:
                self._answers += 1
                noise = f"{self._answers}x{time.monotonic_ns() % 100_000}" if self.noisy else None
            return listing_page(self.tracklists, int(number or 1), self.per_page, noise)
        if path in self.block_once:
            return self.block_once.pop(path)
        tracklist = self._by_path.get(path)
        return tracklist_page(tracklist) if tracklist else None

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer one logged request; a subclass may answer otherwise (``bench.soak_site``)."""
        self.send(handler, self.answer(handler.path))

    @staticmethod
    def send(handler: BaseHTTPRequestHandler, body: bytes | None, status: int = 0) -> None:
        """``body`` with ``status`` (default: 200, or 404 when there is no body)."""
        handler.send_response(status or (200 if body is not None else 404))
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body or b"")))
        handler.end_headers()
        handler.wfile.write(body or b"")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave at once, no 40 ms ACK wait

            def do_GET(self) -> None:
                with site._lock:
                    site.requests.append((time.monotonic(), self.path))
                    site.user_agents.append(self.headers.get("User-Agent", ""))
                site.respond(self)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
