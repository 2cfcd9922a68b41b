"""``scrapy crawl`` that fails loudly when items could not be stored.

Scrapy's own command exits 0 whatever the pipelines did. When the database pipeline had to
spool items to a file (the database stayed unreachable, or a second Ctrl-C stopped the crawl
before the pipeline could flush), a script or scheduler running the crawl must see it: the exit
status is 1. Spider arguments (``-a``) the spider refuses stop the command before the crawl
starts, with one error line and exit status 2, like any other usage error.
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
        check_arguments = getattr(
            self.crawler_process.spider_loader.load(args[0]), "check_arguments", None
        )
        try:
            if check_arguments is not None:
                check_arguments(opts.spargs)
        except ValueError as error:
            raise UsageError(f"spider argument {error}", print_help=False) from error
        crawler = self._create_crawler(args[0])
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        # After a forced stop the spider was never closed and pipelines may still hold items.
        crawler.signals.send_catch_log(signal=CRAWL_ENDED)
        # ``crawler.stats`` raises until the crawl has started; Scrapy's documented way to look
        # before that is the underscored attribute (None when the crawl never started).
        stats = crawler._stats
        spooled = stats.get_value(SPOOLED_STAT, 0) if stats is not None else 0
        if self.crawler_process.bootstrap_failed or spooled:
            self.exitcode = 1
