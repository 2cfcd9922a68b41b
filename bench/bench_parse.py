"""Parse throughput of the 1001tracklists spider: ``python -m bench.bench_parse``.

Times, on the largest saved tracklist page (``../shared/samples``; the project's demo page when
the samples are absent):

- baseline: building the DOM of the page (what Scrapy's ``response.selector`` costs anyway);
- parse: classifying the page and reading its setlist and rows from that DOM;
- spider: the whole callback through Scrapy, from a fresh ``HtmlResponse`` to items.

and then the same on a 100-row page made by repeating that page's rows, against the target of
50 ms for a 100-row page. Each figure is the best of ``--repeat`` runs (other processes on a
shared machine only ever add time), with the median beside it; the ratio is parse / DOM time.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from parsel import Selector
from scrapy.http import HtmlResponse, Request
from scrapy.utils.test import get_crawler

from scrapers.spiders.parsing import classify_page, parse_tracklist
from scrapers.spiders.tracklists_1001 import TracklistsSpider

REPO = Path(__file__).resolve().parents[1]

SAMPLES = REPO.parent / "shared" / "samples" / "1001tracklists" / "tracklist"
DEMO = REPO / "tests" / "fixtures" / "1001tracklists" / "demo_tracklist.html"
TARGET_ROWS = 100
TARGET_MS = 50.0
_ROW_START = re.compile(rb'<div id="tlp_[^"]*" class="[^"]*\btlpItem\b')


def largest_page() -> Path:
    pages = sorted(SAMPLES.glob("*.html"), key=lambda page: page.stat().st_size)
    return pages[-1] if pages else DEMO


def with_rows(html: bytes, count: int) -> bytes:
    """The page with its row blocks repeated until it has ``count`` rows."""
    starts = [match.start() for match in _ROW_START.finditer(html)]
    last_row_end = _end_of_rows(html, starts[-1])
    rows = html[starts[0] : last_row_end]
    copies = -(-count // len(starts))
    return html[: starts[0]] + rows * copies + html[last_row_end:]


def _end_of_rows(html: bytes, last_start: int) -> int:
    """End of the last row: where its ``<div>`` nesting closes."""
    depth = 0
    for match in re.finditer(rb"<div\b|</div>", html[last_start:]):
        depth += 1 if match.group().startswith(b"<div") else -1
        if depth == 0:
            return last_start + match.end()
    return len(html)


def timed_ms(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best and median wall time of ``repeat`` runs, in milliseconds."""
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return min(timings), statistics.median(timings)


def measure(name: str, html: bytes, spider: TracklistsSpider, repeat: int) -> float:
    url = "https://www.1001tracklists.com/tracklist/bench/page.html"
    text = html.decode("utf-8")
    root = Selector(text=text).root
    rows = len(parse_tracklist(root, url).rows)

    def build_dom() -> object:
        return Selector(text=text).root

    def parse_only() -> object:
        classify_page(root)
        return parse_tracklist(root, url)

    def whole_callback() -> list[object]:
        response = HtmlResponse(url=url, body=html, encoding="utf-8", request=Request(url))
        return list(spider.parse(response))

    dom_ms, dom_median = timed_ms(build_dom, repeat)
    parse_ms, parse_median = timed_ms(parse_only, repeat)
    spider_ms, spider_median = timed_ms(whole_callback, repeat)
    print(f"{name}: {rows} rows, {len(html) / 1024:.0f} KiB   best (median) of {repeat}")
    print(f"  baseline  DOM build (lxml via parsel) {dom_ms:7.2f} ms ({dom_median:6.2f})")
    print(f"  parse     setlist + rows from the DOM {parse_ms:7.2f} ms ({parse_median:6.2f})  "
          f"{rows / parse_ms * 1000:7.0f} rows/s")  # fmt: skip
    print(f"  spider    HtmlResponse -> items       {spider_ms:7.2f} ms ({spider_median:6.2f})  "
          f"{rows / spider_ms * 1000:7.0f} rows/s")  # fmt: skip
    print(f"  ratio     parse / DOM build           {parse_ms / dom_ms:7.2f}")
    return spider_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    arguments = parser.parse_args()
    page = largest_page()
    html = page.read_bytes()
    crawler = get_crawler(TracklistsSpider, {"ITEM_PIPELINES": {}, "LOG_LEVEL": "ERROR"})
    spider = TracklistsSpider.from_crawler(crawler)
    crawler.spider = spider
    spider.logger.logger.disabled = True  # the repeated page warns about its stated count
    measure(page.name, html, spider, arguments.repeat)
    print()
    hundred_ms = measure(
        f"the same rows repeated to {TARGET_ROWS}", with_rows(html, TARGET_ROWS), spider,
        arguments.repeat,
    )  # fmt: skip
    verdict = "meets" if hundred_ms < TARGET_MS else "MISSES"
    print(f"\n{TARGET_ROWS}-row page through the spider: {hundred_ms:.1f} ms, "
          f"{verdict} the {TARGET_MS:.0f} ms target")  # fmt: skip
    return 0 if hundred_ms < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
