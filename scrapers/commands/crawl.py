"""``scrapy crawl`` that fails loudly when items could not be stored or a setting is wrong.

Scrapy's own command exits 0 whatever the pipelines did. Here:

* a setting with a value that cannot be used stops the crawl before it starts, with one line
  on stderr and exit status 2, as for any other usage error: ``InvalidSetting`` from a
  component's ``from_crawler`` (it names the setting and the value), ``DatabaseUrlError`` for a
  ``DATABASE_URL`` libpq cannot parse (password removed), ``RedisUrlError`` for a ``REDIS_URL``
  redis-py cannot use (password removed), or a ``UsageError`` raised while the crawl starts;
* spider arguments (``-a``) the spider refuses stop the command before the crawl starts, with
  one error line and exit status 2, in the same way;
* when the database pipeline had to spool items to a file (the database was unavailable, the
  writer failed, or a second Ctrl-C stopped the crawl before the pipeline could flush), or the
  crawl stopped before its work was done (``FAILED_REASONS``: the site kept blocking it, the
  writer failed, the schema is older than the code, a shared frontier's run ended short:
  ``scrapers.crawl.frontier.INCOMPLETE_REASONS``), the exit status is 1, so that a script or
  scheduler running the crawl sees it. Any other failure to start the crawl also exits 1, with
  Scrapy's traceback;
* when pages could not be fetched (Scrapy "gave up retrying" them: a 5xx or 429 answer, a
  network error, a ``file://`` page that cannot be read, a page still incomplete or blocked after
  its retries), the crawl ended short: the exit status is 1 and one line on stderr says how many
  and that running the command again retries them (nothing of theirs was stored, so the next
  run fetches them). Pages dropped on purpose do not count: a page that does not exist (404 and
  other 4xx answers Scrapy does not retry, the site's "page does not exist"), an empty one, one
  past ``DOWNLOAD_MAXSIZE``: asking again would not change them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from scrapy.commands.crawl import Command as ScrapyCrawl
from scrapy.crawler import Crawler
from scrapy.exceptions import UsageError
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from scrapers.crawl.frontier import INCOMPLETE_REASONS, INCOMPLETE_STATS, RedisUnavailable
from scrapers.crawl.incremental import SCHEMA_CLOSE_REASON
from scrapers.db.server.connection import DatabaseUrlError
from scrapers.pipelines.database_pipeline import CRAWL_ENDED, WRITER_ERROR_REASON
from scrapers.pipelines.outage import LOST_STAT, SPOOLED_STAT
from scrapers.redis_url import RedisUrlError
from scrapers.settings_check import InvalidSetting
from scrapers.spiders.blocking import CLOSE_REASON as BLOCKED_CLOSE_REASON

logger = logging.getLogger(__name__)

USAGE_ERROR_EXIT = 2
# Errors that mean "the user asked for something that cannot be done", not a defect.
# Finish reasons of a crawl that stopped before its work was done.
FAILED_REASONS = frozenset(
    {BLOCKED_CLOSE_REASON, WRITER_ERROR_REASON, SCHEMA_CLOSE_REASON, *INCOMPLETE_REASONS}
)
REFUSALS = (InvalidSetting, UsageError, DatabaseUrlError, RedisUrlError, RedisUnavailable)
# Scrapy's count of requests it gave up retrying (RetryMiddleware, and the blocked-page
# middleware through the same ``get_retry_request``).
UNFETCHED_STAT = "retry/max_reached"


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
        self._refused: Exception | None = None
        try:
            crawler = self._create_crawler(args[0])  # applies the spider's update_settings
        except REFUSALS as error:
            self._refuse(error)
            return
        started = self.crawler_process.crawl(crawler, **opts.spargs)
        if isinstance(started, Deferred):
            started.addErrback(self._deferred_failed)
        else:
            started.add_done_callback(self._task_done)
        self.crawler_process.start()
        if self._refused is not None:
            self._refuse(self._refused)
            return
        # After a forced stop the spider was never closed and pipelines may still hold items.
        crawler.signals.send_catch_log(signal=CRAWL_ENDED)
        unfetched = _unfetched(crawler)
        if unfetched:
            pages, them = ("1 page", "it") if unfetched == 1 else (f"{unfetched} pages", "them")
            print(
                f"scrapy crawl: {pages} could not be fetched (gave up retrying); "
                f"run the same command again to retry {them}",
                file=sys.stderr,
            )
        if self.crawler_process.bootstrap_failed or unfetched or _unfinished(crawler):
            self.exitcode = 1

    def _refuse(self, error: Exception) -> None:
        what = "invalid setting: " if isinstance(error, InvalidSetting) else ""
        print(f"scrapy crawl: {what}{error}", file=sys.stderr)
        self.exitcode = USAGE_ERROR_EXIT

    def _task_done(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if isinstance(error, REFUSALS):
            self._refused = error
        elif error is not None:
            # Retrieved here, so asyncio no longer reports it: say it ourselves, in full.
            logger.error("The crawl could not start", exc_info=error)

    def _deferred_failed(self, failure: Failure) -> Failure | None:
        if failure.check(*REFUSALS):
            self._refused = failure.value
            return None
        return failure


def _unfetched(crawler: Crawler) -> int:
    """How many pages the crawl gave up fetching after their retries (0 without stats)."""
    try:
        return int(crawler.stats.get_value(UNFETCHED_STAT, 0))
    except RuntimeError:
        return 0


def _unfinished(crawler: Crawler) -> bool:
    """Items the pipeline spooled (or could not even spool), or a crawl that stopped before its
    work was done (``FAILED_REASONS``); neither when the crawl never got as far as having stats."""
    try:
        stats = crawler.stats
    except RuntimeError:
        return False
    spooled = stats.get_value(SPOOLED_STAT, 0) + stats.get_value(LOST_STAT, 0)
    left = any(stats.get_value(name) for name in INCOMPLETE_STATS)  # a shared frontier's
    return bool(spooled) or left or stats.get_value("finish_reason") in FAILED_REASONS
