"""What one crawl worker parses and stores per second: ``python -m bench.bench_crawl``.

A generated site (``tests.sitegen``: ``--tracklists`` pages of 6 to 9 rows behind listings of 20)
is served on 127.0.0.1 and crawled with zero delay by one worker, three ways, in this run:

- baseline: fetch and parse only (no item pipelines), what Scrapy and the parser cost;
- store: the project's pipelines (enrichment deferred, the database pipeline) into a fresh
  database, the crawl as a user runs it;
- again: the same crawl a second time over the stored catalogue: every tracklist is known, so
  only the listings are fetched (the incremental lookup's cost).

Rates are tracklist pages (and rows) per second of the crawl's own elapsed time; the ratio is
store / baseline. The last lines put the figures beside the limits a real crawl has: the site's
delay (pages a day) and MusicBrainz's 1 request/s (tracks enriched a day).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg2.extensions

from bench.bench_pipeline import drop_database, fresh_database
from scrapers.db.server.connection import resolve_database_url
from tests.sitegen import GeneratedSite, make_tracklists

REPO = Path(__file__).resolve().parents[1]
DAY = 86400


def crawl(site: GeneratedSite, database_url: str | None, concurrency: int) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "EXTENSIONS": {},
        "TELNETCONSOLE_ENABLED": False,
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": False,
        "CONCURRENT_REQUESTS": concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "LOG_LEVEL": "WARNING",
    }
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if database_url is None:
        settings["ITEM_PIPELINES"] = {}
    else:
        env["DATABASE_URL"] = database_url
    config = json.dumps({"settings": settings, "arguments": {"start_urls": site.start_url}})
    done = subprocess.run(
        [sys.executable, "-m", "tests.crawl_process", config],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"crawl failed:\n{done.stderr[-3000:]}")
    [line] = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))


def report(name: str, stats: dict[str, Any], baseline: float | None) -> float:
    seconds = float(stats["elapsed_time_seconds"])
    pages = stats.get("tracklist/pages", 0)
    rows = stats.get("tracklist/rows", 0)
    requests = stats.get("downloader/request_count", 0)
    rate = pages / seconds
    ratio = f"{rate / baseline:5.2f}x baseline" if baseline else "         baseline"
    print(
        f"{name:<9} {seconds:7.2f} s  {requests:5d} requests  {pages:5d} pages"
        f"  {rate:7.1f} pages/s  {rows / seconds:8.1f} rows/s  {ratio}"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracklists", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight")
    parser.add_argument("--site-delay", type=float, default=5.0, help="the real site's delay")
    args = parser.parse_args()

    server_url = psycopg2.extensions.make_dsn(resolve_database_url(), dbname="postgres")
    site = GeneratedSite(make_tracklists(args.tracklists)).start()
    database = fresh_database(server_url)
    try:
        print(f"{args.tracklists} tracklists, zero delay, {args.concurrency} request(s) in flight")
        baseline = report("baseline", crawl(site, None, args.concurrency), None)
        store = report("store", crawl(site, database, args.concurrency), baseline)
        again = crawl(site, database, args.concurrency)
        skipped = sum(v for k, v in again.items() if k.startswith("tracklists/skipped/"))
        print(
            f"again     {float(again['elapsed_time_seconds']):7.2f} s"
            f"  {again.get('downloader/request_count', 0):5d} requests"
            f"  {again.get('tracklist/pages', 0):5d} pages  {skipped} known tracklists skipped"
        )
    finally:
        drop_database(server_url, database)
        site.stop()
    site_pages = DAY / args.site_delay
    print(
        f"limits: the site at {args.site_delay:g} s/request allows {site_pages:,.0f} pages a day;"
        f" one worker stores {store * DAY:,.0f} a day ({store * args.site_delay:,.0f}x that)."
    )
    print(
        "MusicBrainz at 1 request/s: 86,400 requests a day, so at most 86,400 new tracks"
        " enriched a day (one search each; up to 3 detail lookups more for an unclear match;"
        " cached answers are free); a self-hosted mirror has no such limit."
    )


if __name__ == "__main__":
    main()
