"""Whole crawls of the 1001tracklists spider, in a child process, against pages served locally.

A local HTTP server on 127.0.0.1 plays the site with the project's own fixture pages (and the
block pages it serves when throttling); ``file://`` crawls run offline. Each crawl runs in its
own process because a Twisted reactor cannot be restarted inside the test process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.serving import serving
from tests.sitegen import GeneratedSite, make_tracklists

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "1001tracklists"
DEMO = FIXTURES / "demo_tracklist.html"
BLOCK_KINDS = ("interstitial", "ip_limit", "captcha", "not_found", "empty", "not_html")

# Settings every test crawl uses: no database, no metrics server, no waiting between requests.
QUIET = {
    "ITEM_PIPELINES": {},
    "EXTENSIONS": {},
    "DOWNLOAD_DELAY": 0,
    "DOWNLOAD_DELAY_JITTER": 0,
    "AUTOTHROTTLE_ENABLED": False,
    "LOG_LEVEL": "INFO",
    "TELNETCONSOLE_ENABLED": False,
}

RUNNER = """
import json, re, sys
from prometheus_client import REGISTRY
from scrapy import signals
from scrapy.crawler import CrawlerProcess
from scrapy.utils.project import get_project_settings

config = json.loads(sys.argv[1])
settings = get_project_settings()
settings.setdict(config["settings"], priority="cmdline")
process = CrawlerProcess(settings)
crawler = process.create_crawler("1001tracklists")
items = []
scheduled = []

def keep(item, **kwargs):
    items.append(dict(item))

def schedule(request, **kwargs):
    scheduled.append(request.url)

crawler.signals.connect(keep, signal=signals.item_scraped)
crawler.signals.connect(schedule, signal=signals.request_scheduled)
process.crawl(crawler, **config["arguments"])
process.start()
blocked = {
    kind: REGISTRY.get_sample_value("crawl_blocked_pages_total", {"kind": kind}) or 0
    for kind in config["kinds"]
}
print("RESULT " + json.dumps({
    "items": items,
    "scheduled": scheduled,
    "finish_reason": crawler.stats.get_value("finish_reason"),
    "blocked": blocked,
    "decoys": REGISTRY.get_sample_value("crawl_decoy_rows_total") or 0,
    "too_large": REGISTRY.get_sample_value("crawl_pages_too_large_total") or 0,
    "listings_not_followed": (
        REGISTRY.get_sample_value("crawl_listing_pages_not_followed_total") or 0
    ),
    # VmHWM: this process's peak; ru_maxrss would carry the forking parent's peak over exec.
    "peak_rss_mib": int(re.search(r"VmHWM:\\s*(\\d+)", open("/proc/self/status").read())[1]) / 1024,
    "stats": {
        key: value for key, value in crawler.stats.get_stats().items()
        if isinstance(value, (int, float))
    },
}))
"""


def run_crawl(arguments: dict[str, str], **settings: Any) -> tuple[dict[str, Any], str]:
    config = {"arguments": arguments, "settings": {**QUIET, **settings}, "kinds": BLOCK_KINDS}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(config)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT ")), done.stderr


def scrapy_crawl(*arguments: str, database_url: str | None = None) -> subprocess.CompletedProcess:
    """``scrapy crawl 1001tracklists ARGUMENTS`` as a user runs it, without extensions or telnet."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "scrapy", "crawl", "1001tracklists", *arguments,
         "-s", "EXTENSIONS={}", "-s", "TELNETCONSOLE_ENABLED=False"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


class FakeSite:
    """Answers like the site from fixture pages; records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[float, str, str]] = []  # (time, path, user agent)
        self.forms: list[dict[str, list[str]]] = []  # bodies of POST requests
        self.tracklist_answers: Callable[[str, int], bytes] = self.demo_page
        self.tracklist_statuses: dict[str, int] = {}  # tracklist id: an HTTP error it answers
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    @staticmethod
    def demo_page(tracklist_id: str, attempt: int) -> bytes:
        return DEMO.read_bytes().replace(b"9demo01x", tracklist_id.encode())

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.reply(self.path)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                site.forms.append(form)
                self.reply(f"{self.path}?page={form.get('page', ['1'])[0]}")

            def reply(self, path: str) -> None:
                site.requests.append((time.monotonic(), path, self.headers["User-Agent"]))
                body, content_type = site.answer(path)
                match = re.match(r"^/tracklist/([0-9a-z]+)/", path)
                error = site.tracklist_statuses.get(match[1]) if match else None
                self.send_response(error or (200 if body is not None else 404))
                self.send_header("Content-Type", content_type)
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def answer(self, path: str) -> tuple[bytes | None, str]:
        if path == "/robots.txt":
            return b"User-agent: *\nDisallow: /private/\n", "text/plain"
        pages = {
            "/": "listing_page1.html",  # the front page lists the newest tracklists
            "/dj/novaharbor/index.html": "listing_page1.html",
            "/search/result.php?page=1": "search_results.html",
            "/search/result.php?page=2": "search_results_page2.html",
        }
        if path in pages:
            return (FIXTURES / pages[path]).read_bytes(), "text/html; charset=utf-8"
        if path == "/api/tracklist.json":  # what an API or an error handler might answer
            return b'{"error": {"code": 4, "message": "quota"}}', "application/json"
        if path == "/dj/novaharbor/index2.html":
            return (FIXTURES / "listing_page2.html").read_bytes(), "text/html; charset=utf-8"
        match = re.match(r"^(?:/private)?/tracklist/([0-9a-z]+)/", path)
        if match:
            attempt = sum(1 for seen in self.paths() if seen == path) - 1  # this one is logged
            return self.tracklist_answers(match[1], attempt), "text/html; charset=utf-8"
        return None, "text/html"


@pytest.fixture
def site() -> Iterator[FakeSite]:
    fake = FakeSite()
    with serving(fake.server):
        yield fake


def test_offline_crawl_of_a_saved_page_exports_items(tmp_path: Path) -> None:
    """The README's offline command: ``scrapy crawl 1001tracklists -a start_urls=file://… -O``."""
    out = tmp_path / "items.jsonl"
    done = scrapy_crawl(
        "-a", f"start_urls={DEMO.as_uri()}", "-O", str(out), "-s", "ITEM_PIPELINES={}"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 11
    assert rows[0]["source_id"] == "9demo01x" and rows[0]["stated_track_count"] == 10
    assert [row["row_index"] for row in rows[1:]] == list(range(10))
    assert rows[4]["is_unknown"] and (rows[4]["artist"], rows[4]["title"]) == ("ID", "ID")
    assert rows[9]["artist"] == "Juno Reyes & Tamsin Cole"  # the decoy row, corrected


def test_listing_crawl_follows_pagination_politely(site: FakeSite) -> None:
    result, _ = run_crawl(
        {"start_urls": f"{site.base}/dj/novaharbor/index.html,{site.base}/private/tracklist/x/"}
    )
    setlists = [item for item in result["items"] if "source_id" in item]
    assert sorted(item["source_id"] for item in setlists) == ["9demo01x", "9demo02x", "9demo03x"]
    assert len(result["items"]) == 3 + 3 * 10
    paths = site.paths()
    assert paths[0] == "/robots.txt"
    assert "/dj/novaharbor/index2.html" in paths
    assert not any(path.startswith("/private/") for path in paths)  # robots.txt obeyed
    assert result["stats"]["robotstxt/forbidden"] == 1
    assert paths.count("/tracklist/9demo01x/nova-harbor-pier-stage-lowtide-festival-"
                       "netherlands-2025-06-14.html") == 1  # fmt: skip
    user_agents = {agent for _, _, agent in site.requests}
    assert len(user_agents) == 1 and "tracklists-catalogue" in user_agents.pop()
    assert result["finish_reason"] == "finished"
    assert result["decoys"] == 3  # one decoy row on each served page


def test_max_pages_stops_after_that_many_tracklists(site: FakeSite) -> None:
    result, _ = run_crawl({"start_urls": f"{site.base}/dj/novaharbor/index.html", "max_pages": "2"})
    setlists = [item for item in result["items"] if "source_id" in item]
    assert len(setlists) == 2 and len(result["items"]) == 2 + 2 * 10
    assert "/dj/novaharbor/index2.html" not in site.paths()
    assert result["finish_reason"] == "max_pages"


def test_block_pages_are_retried_with_growing_backoff(site: FakeSite) -> None:
    interstitial = (FIXTURES / "blocked_interstitial.html").read_bytes()

    def two_blocks_then_content(tracklist_id: str, attempt: int) -> bytes:
        return interstitial if attempt < 2 else FakeSite.demo_page(tracklist_id, attempt)

    site.tracklist_answers = two_blocks_then_content
    result, log = run_crawl(
        {"start_urls": f"{site.base}/tracklist/9demo01x/a.html"}, BLOCKED_BACKOFF_BASE=0.4
    )
    times = [when for when, path, _ in site.requests if path.startswith("/tracklist/")]
    assert len(times) == 3
    # 0.4 s after the first block, 0.8 s after the second. Scrapy spaces the requests it sends;
    # the site sees when they arrive, and on a busy machine (parallel test workers) one request
    # can reach it a little later than the next one does after it: 0.31 s was measured for 0.4.
    arrival_jitter = 0.15
    assert times[1] - times[0] >= 0.4 - arrival_jitter
    assert times[2] - times[1] >= 0.8 - arrival_jitter
    assert result["blocked"]["interstitial"] == 2
    assert len(result["items"]) == 11 and result["finish_reason"] == "finished"
    assert log.count("Blocked page (interstitial)") == 2
    assert f"{site.base}/tracklist/9demo01x/a.html" in log


def test_too_many_blocks_in_a_row_stop_the_crawl(site: FakeSite) -> None:
    site.tracklist_answers = lambda tracklist_id, attempt: (
        FIXTURES / "blocked_ip_limit.html"
    ).read_bytes()
    urls = ",".join(f"{site.base}/tracklist/9demo0{n}x/a.html" for n in range(1, 6))
    result, log = run_crawl(
        {"start_urls": urls},
        BLOCKED_BACKOFF_BASE=0.05,
        BLOCKED_PAGES_MAX_IN_ROW=3,
        BLOCKED_PAGE_RETRY_TIMES=10,
    )
    assert result["items"] == []
    assert result["finish_reason"] == "blocked_pages_in_a_row"
    assert result["blocked"]["ip_limit"] == 3
    assert sum(path.startswith("/tracklist/") for path in site.paths()) == 3
    assert "Stopping the crawl: 3 non-content pages in a row" in log


def test_a_crawl_the_site_keeps_blocking_exits_1(site: FakeSite, db_url: str) -> None:
    site.tracklist_answers = lambda tracklist_id, attempt: (
        FIXTURES / "blocked_ip_limit.html"
    ).read_bytes()
    urls = ",".join(f"{site.base}/tracklist/9demo0{n}x/a.html" for n in range(1, 6))
    done = scrapy_crawl(
        "-a", f"start_urls={urls}", "-s", "BLOCKED_BACKOFF_BASE=0.05",
        "-s", "BLOCKED_PAGES_MAX_IN_ROW=3", "-s", "TRACKLISTS_SITE_URL=" + site.base,
        "-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=False",
        database_url=db_url,
    )  # fmt: skip
    # A scheduler must see that the crawl did not do its work.
    assert "'finish_reason': 'blocked_pages_in_a_row'" in done.stderr, done.stderr[-3000:]
    assert done.returncode == 1


def test_a_crawl_that_could_not_fetch_a_page_exits_1_and_the_next_run_fetches_it(
    site: FakeSite, db_url: str, db: Any
) -> None:
    """A page given up after retries (500) is a crawl that ended short; a page that does not
    exist (404) is not: asking again would not make it exist."""
    site.tracklist_statuses = {"9demo02x": 500, "9demo03x": 404}
    urls = ",".join(f"{site.base}/tracklist/9demo0{n}x/a.html" for n in range(1, 4))
    arguments = ("-a", f"start_urls={urls}", "-s", "DOWNLOAD_DELAY=0",
                 "-s", "AUTOTHROTTLE_ENABLED=False", "-s", "RETRY_TIMES=1")  # fmt: skip
    done = scrapy_crawl(*arguments, database_url=db_url)
    assert done.returncode == 1, done.stderr[-3000:]
    assert (
        "scrapy crawl: 1 page could not be fetched (gave up retrying); "
        "run the same command again to retry it"
    ) in done.stderr
    assert site.paths().count("/tracklist/9demo02x/a.html") == 2  # the first try and one retry

    site.tracklist_statuses = {"9demo03x": 404}
    again = scrapy_crawl(*arguments, database_url=db_url)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "could not be fetched" not in again.stderr
    with db.cursor() as cursor:
        cursor.execute("SELECT source_id FROM setlists ORDER BY source_id")
        assert [row[0] for row in cursor.fetchall()] == ["9demo01x", "9demo02x"]


def test_a_start_url_that_cannot_be_read_exits_1(tmp_path: Path, db_url: str) -> None:
    done = scrapy_crawl(
        "-a", f"start_urls={(tmp_path / 'missing.html').as_uri()}", database_url=db_url
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "scrapy crawl: 1 page could not be fetched" in done.stderr


def test_http_cache_replays_content_but_never_a_block_page(site: FakeSite, tmp_path: Path) -> None:
    interstitial = (FIXTURES / "blocked_interstitial.html").read_bytes()
    site.tracklist_answers = lambda tracklist_id, attempt: (
        interstitial if attempt == 0 else FakeSite.demo_page(tracklist_id, attempt)
    )
    cache = {"HTTPCACHE_ENABLED": True, "HTTPCACHE_DIR": str(tmp_path / "cache")}
    arguments = {"start_urls": f"{site.base}/tracklist/9demo01x/a.html"}
    first, _ = run_crawl(arguments, BLOCKED_BACKOFF_BASE=0.05, **cache)
    assert len(first["items"]) == 11 and first["blocked"]["interstitial"] == 1
    served = len(site.requests)
    again, _ = run_crawl(arguments, **cache)
    assert len(again["items"]) == 11 and again["blocked"]["interstitial"] == 0
    assert len(site.requests) == served  # the second run never asked the site


def setlist_ids(result: dict[str, Any]) -> list[str]:
    return sorted(item["source_id"] for item in result["items"] if "source_id" in item)


def test_without_arguments_the_crawl_starts_from_the_front_page(site: FakeSite) -> None:
    result, _ = run_crawl({"max_pages": "2"}, TRACKLISTS_SITE_URL=site.base)
    assert site.paths()[:2] == ["/robots.txt", "/"]
    assert setlist_ids(result) == ["9demo01x", "9demo02x"]
    assert result["finish_reason"] == "max_pages"


def test_search_posts_the_form_and_follows_its_pages(site: FakeSite) -> None:
    result, _ = run_crawl({"search": "Nova  Harbor"}, TRACKLISTS_SITE_URL=site.base)
    assert [form["main_search"] for form in site.forms] == [["Nova Harbor"], ["Nova Harbor"]]
    assert [form.get("page") for form in site.forms] == [None, ["2"]]
    assert all(form["search_selection"] == ["9"] for form in site.forms)
    assert setlist_ids(result) == ["9demo04x", "9demo05x", "9demo06x"]


def test_dj_argument_reads_the_dj_page(site: FakeSite) -> None:
    result, _ = run_crawl({"dj": "novaharbor", "max_pages": "1"}, TRACKLISTS_SITE_URL=site.base)
    assert "/dj/novaharbor/index.html" in site.paths()
    assert len(setlist_ids(result)) == 1


def test_offline_crawl_into_the_database(db_url: str, db: Any) -> None:
    """The demo page through the project's real pipeline: ID rows keep their place, no track."""
    done = scrapy_crawl("-a", f"start_urls={DEMO.as_uri()}", database_url=db_url)
    assert done.returncode == 0, done.stderr[-3000:]
    with db.cursor() as cursor:
        cursor.execute("SELECT source_id, stated_track_count, set_date::text FROM setlists")
        assert cursor.fetchall() == [("9demo01x", 10, "2025-06-14")]
        cursor.execute(
            "SELECT row_index, position, track_id IS NULL, is_unknown, is_partial_id,"
            " mashup_parent_row, raw_artist FROM setlist_tracks ORDER BY row_index"
        )
        rows = cursor.fetchall()
        cursor.execute("SELECT count(*), count(*) FILTER (WHERE title = 'ID') FROM tracks")
        tracks, called_id = cursor.fetchone()
    assert [row[0] for row in rows] == list(range(10))
    assert rows[3][1:5] == (3, True, True, False)  # "ID - ID": position kept, no track
    assert rows[4][1:5] == (4, True, False, True)  # "Orrin Vale - ID"
    assert [row[5] for row in rows[6:8]] == [5, 5]  # the mashup's parts
    assert rows[8][6] == "Juno Reyes & Tamsin Cole"  # the decoy row, corrected
    assert sum(not row[2] for row in rows) == 8
    assert (tracks, called_id) == (7, 0)  # "Lanterns" played twice is one track


def test_offline_crawl_of_a_saved_search_page_never_goes_online(site: FakeSite) -> None:
    """A saved search page's pager posts to the site: from file:// that must not happen."""
    saved = FIXTURES / "search_results.html"
    result, log = run_crawl({"start_urls": saved.as_uri()}, TRACKLISTS_SITE_URL=site.base)
    assert site.requests == []  # the "live site" was never asked, not even for robots.txt
    assert result["scheduled"][0] == saved.as_uri()
    assert len(result["scheduled"]) == 3
    assert all(url.startswith("file:///") for url in result["scheduled"])
    assert result["stats"]["offline/links_not_followed"] == 1
    assert f"not following {site.base}/search/result.php" in log


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("max_pages=-1", "max_pages: must be at least 1, got -1"),
        ("search=" + "x" * 151, "search: at most 150 characters, got 151"),
    ],
)
def test_invalid_spider_argument_stops_scrapy_crawl_with_one_clear_line(
    argument: str, message: str
) -> None:
    done = scrapy_crawl("-a", argument, "-s", "ITEM_PIPELINES={}")
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].endswith(f"error: spider argument {message}")
    assert "Traceback" not in done.stderr and "Crawler.stats" not in done.stderr


def test_json_answer_is_counted_as_not_html_and_the_crawl_goes_on(site: FakeSite) -> None:
    urls = f"{site.base}/api/tracklist.json,{site.base}/tracklist/9demo01x/a.html"
    result, log = run_crawl({"start_urls": urls}, TRACKLISTS_SITE_URL=site.base)
    assert result["stats"]["blocked_pages/not_html"] == 1
    assert f"Not an HTML page, skipped: {site.base}/api/tracklist.json" in log
    assert "Traceback" not in log and "TypeError" not in log
    assert len(result["items"]) == 11 and result["finish_reason"] == "finished"


def test_production_credits_reach_the_database_outside_the_title(db_url: str, db: Any) -> None:
    page = FIXTURES / "text_quality_tracklist.html"
    done = scrapy_crawl("-a", f"start_urls={page.as_uri()}", database_url=db_url)
    assert done.returncode == 0, done.stderr[-3000:]
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT title, metadata->'credits' FROM tracks WHERE metadata ? 'credits'"
            " ORDER BY title"
        )
        assert cursor.fetchall() == [
            ("Night Bus", [{"name": "Juno Reyes & Mara Lynn", "role": "producer"}]),
            ("Pressure (Sable Drift Remix)", [{"name": "Orrin Vale", "role": "co-producer"}]),
        ]
        cursor.execute("SELECT count(*) FROM rejected_items")
        assert cursor.fetchone() == (0,)


def test_a_page_past_download_maxsize_is_dropped_counted_and_memory_stays_bounded(
    site: FakeSite,
) -> None:
    """A 60 MiB answer (sent without Content-Length, so only the bytes read can tell) is cut off
    at the project's DOWNLOAD_MAXSIZE: counted, logged with its URL, and the crawl goes on."""
    huge = FakeSite.demo_page("9huge01x", 0) + b"<!--" + b"x" * (60 << 20) + b"-->"

    def huge_for_one(tracklist_id: str, attempt: int) -> bytes:
        return huge if tracklist_id == "9huge01x" else FakeSite.demo_page(tracklist_id, attempt)

    site.tracklist_answers = huge_for_one
    urls = f"{site.base}/tracklist/9huge01x/a.html,{site.base}/tracklist/9demo01x/a.html"
    result, log = run_crawl({"start_urls": urls})
    print(f"peak RSS of the crawl: {result['peak_rss_mib']:.0f} MiB")
    assert setlist_ids(result) == ["9demo01x"]
    assert result["too_large"] == 1
    assert "Page larger than DOWNLOAD_MAXSIZE" in log and "/tracklist/9huge01x/a.html" in log
    # Scrapy's own limit (1 GiB) buffers and parses the whole page (about 500 MiB here); a crawl
    # of one small page peaks near 90 MiB.
    assert result["peak_rss_mib"] < 150


def test_an_endless_listing_of_fresh_urls_is_bounded_and_each_tracklist_fetched_once() -> None:
    """Every answer's links carry a fresh ``?r=`` and the last page's "next" leads back to the
    first: a tracklist is still fetched once (known by its id), and the crawl follows at most
    CRAWL_MAX_LISTING_PAGES listing pages, then says so and ends."""
    site = GeneratedSite(make_tracklists(30), per_page=10).start()
    site.noisy = True
    try:
        result, log = run_crawl({"start_urls": site.start_url}, CRAWL_MAX_LISTING_PAGES=7)
    finally:
        site.stop()
    fetched = site.tracklist_fetches()
    assert sorted(fetched) == sorted(set(fetched)) and len(fetched) == 30
    listings = [path for path in site.paths() if path.startswith("/tracklists/")]
    assert len(listings) == 1 + 7  # the start page, then the bound's worth of next pages
    assert result["listings_not_followed"] == 1
    assert result["finish_reason"] == "finished"
    assert "this crawl followed 7 listing pages (CRAWL_MAX_LISTING_PAGES)" in log
