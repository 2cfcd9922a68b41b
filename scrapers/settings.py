"""Scrapy settings for the tracklists catalogue.

Every setting here can be overridden on the command line (``-s NAME=value``); the ones that
carry secrets or locations are read from the environment instead. The README documents each.
"""

import os

BOT_NAME = "scrapers"
SPIDER_MODULES = ["scrapers.spiders"]
NEWSPIDER_MODULE = "scrapers.spiders"

# Where the catalogue lives. Empty means: start (or reuse) the embedded PostgreSQL server.
DATABASE_URL = os.environ.get("DATABASE_URL", "")

# Politeness: the site is small and rate-limits aggressively.
PROJECT_CONTACT_URL = "https://github.com/tracklists-catalogue/tracklists-catalogue"
USER_AGENT = f"tracklists-catalogue/0.1 (+{PROJECT_CONTACT_URL})"
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS_PER_DOMAIN = 1
DOWNLOAD_DELAY = 5.0
DOWNLOAD_DELAY_JITTER = 0.5  # each wait is 0.5x to 1.5x DOWNLOAD_DELAY
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 5.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
HTTPCACHE_ENABLED = False
# Pages the site serves instead of content (README "Crawling"): after a throttling page every
# request to the site waits BLOCKED_BACKOFF_BASE seconds, doubling per page in a row up to
# BLOCKED_BACKOFF_MAX; a page is retried BLOCKED_PAGE_RETRY_TIMES times; the crawl stops after
# BLOCKED_PAGES_MAX_IN_ROW such pages in a row.
BLOCKED_BACKOFF_BASE = 60.0
BLOCKED_BACKOFF_MAX = 900.0
BLOCKED_PAGE_RETRY_TIMES = 3
BLOCKED_PAGES_MAX_IN_ROW = 5

ITEM_PIPELINES: dict[str, int] = {}

LOG_LEVEL = "INFO"
FEED_EXPORT_ENCODING = "utf-8"
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
