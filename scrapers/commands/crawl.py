"""``scrapy crawl`` that fails loudly when items could not be stored.

Scrapy's own command exits 0 whatever the pipelines did. When the database pipeline had to
spool items to a file (the database stayed unreachable, or a second Ctrl-C stopped the crawl
before the pipeline could flush), a script or scheduler running the crawl must see it: the exit
status is 1.
"""

from __future__ import annotations

import argparse

from scrapy.commands.crawl import Command as ScrapyCrawl
from scrapy.exceptions import UsageError

from scrapers.pipelines.database_pipeline import CRAWL_ENDED, SPOOLED_STAT


class Command(ScrapyCrawl):
    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            raise UsageError("give exactly one spider name")
        assert self.crawler_process
        crawler = self._create_crawler(args[0])
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        # After a forced stop the spider was never closed and pipelines may still hold items.
        crawler.signals.send_catch_log(signal=CRAWL_ENDED)
        spooled = crawler.stats.get_value(SPOOLED_STAT, 0) if crawler.stats else 0
        if self.crawler_process.bootstrap_failed or spooled:
            self.exitcode = 1
