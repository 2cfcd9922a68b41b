"""Run one crawl (of the 1001tracklists spider unless ``"spider"`` names another) in this
process and print its stats as JSON.

``python -m tests.crawl_process '{"settings": {...}, "arguments": {...}}'``: tests start it as a
child (a Twisted reactor cannot be restarted), send it signals, and read the ``RESULT`` line.
It runs the crawl as ``scrapy crawl`` does, with Ctrl-C and SIGTERM handled by Scrapy.
"""

from __future__ import annotations

import json
import sys

from scrapy.crawler import CrawlerProcess
from scrapy.utils.project import get_project_settings


def main() -> None:
    config = json.loads(sys.argv[1])
    settings = get_project_settings()
    settings.setdict(config["settings"], priority="cmdline")
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(config.get("spider", "1001tracklists"))
    process.crawl(crawler, **config["arguments"])
    process.start()
    stats = {
        key: value
        for key, value in crawler.stats.get_stats().items()
        if isinstance(value, (int, float, str))
    }
    print("RESULT " + json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
