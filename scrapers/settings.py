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
RANDOMIZE_DOWNLOAD_DELAY = True
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 5.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
HTTPCACHE_ENABLED = False

ITEM_PIPELINES: dict[str, int] = {}

LOG_LEVEL = "INFO"
FEED_EXPORT_ENCODING = "utf-8"
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
