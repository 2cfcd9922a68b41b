"""Scrapy settings for the tracklists catalogue: every default, written once.

The ones that carry secrets or locations may come from the environment (``from_environment``);
``-s NAME=value`` overrides any of them. The precedence, for every process (``scrapy crawl``, the
enrichment service, the web explorer, the scripts): ``-s`` > the environment > the values here.
Outside ``scrapy crawl``, ``scrapers.settings_check.project_settings`` builds them the same way.
docs/configuration.md lists each (``tests/test_docs.py`` checks the list against this module).
"""

import os
from collections.abc import Mapping

BOT_NAME = "scrapers"
SPIDER_MODULES = ["scrapers.spiders"]
NEWSPIDER_MODULE = "scrapers.spiders"

# Where the catalogue lives. Empty means: start (or reuse) the embedded PostgreSQL server.
DATABASE_URL = ""

# The site crawled: its front page, search and DJ pages (the tests point it at a local server).
TRACKLISTS_SITE_URL = "https://www.1001tracklists.com"

# Politeness: the site is small and rate-limits aggressively.
PROJECT_CONTACT_URL = "https://github.com/tracklists-catalogue/tracklists-catalogue"
USER_AGENT = f"tracklists-catalogue/0.1 (+{PROJECT_CONTACT_URL})"
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS_PER_DOMAIN = 1
# One site, one request in flight: the rest wait in the scheduler, where a stopped crawl drops them.
CONCURRENT_REQUESTS = 1
DOWNLOAD_DELAY = 5.0
DOWNLOAD_DELAY_JITTER = 0.5  # each wait is 0.5x to 1.5x DOWNLOAD_DELAY
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 5.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
# Pages larger than DOWNLOAD_MAXSIZE bytes are dropped unread (counted in
# crawl_pages_too_large_total); past DOWNLOAD_WARNSIZE a warning is logged. The site's largest real
# tracklist pages are about 350 KiB; Scrapy's own limit (1 GiB) let one page take 500 MB of memory.
DOWNLOAD_MAXSIZE = 4 * 1024 * 1024
DOWNLOAD_WARNSIZE = 1024 * 1024
HTTPCACHE_ENABLED = False
HTTPCACHE_POLICY = "scrapers.spiders.blocking.ContentOnlyCachePolicy"  # never stores block pages
# Pages the site serves instead of content (README "Crawling"): after a throttling page every
# request to the site waits BLOCKED_BACKOFF_BASE seconds, doubling per page in a row up to
# BLOCKED_BACKOFF_MAX; a page is retried BLOCKED_PAGE_RETRY_TIMES times; the crawl stops after
# BLOCKED_PAGES_MAX_IN_ROW such pages in a row.
BLOCKED_BACKOFF_BASE = 60.0
BLOCKED_BACKOFF_MAX = 900.0
BLOCKED_PAGE_RETRY_TIMES = 3
BLOCKED_PAGES_MAX_IN_ROW = 5

# Incremental crawls (README "Incremental crawls"): a tracklist already stored is not fetched again
# unless due. "due" (default; `-a refresh=` overrides), "all" or "none". A set is recent for
# CRAWL_REFRESH_RECENT_DAYS after its date and re-fetched every CRAWL_REFRESH_RECENT_EVERY_DAYS;
# an older one with "ID" rows every CRAWL_REFRESH_ID_ROWS_EVERY_DAYS until it is
# CRAWL_REFRESH_ID_ROWS_MAX_AGE_DAYS old; any other set never.
CRAWL_REFRESH = "due"
CRAWL_REFRESH_RECENT_DAYS = 28.0
CRAWL_REFRESH_RECENT_EVERY_DAYS = 3.0
CRAWL_REFRESH_ID_ROWS_EVERY_DAYS = 30.0
CRAWL_REFRESH_ID_ROWS_MAX_AGE_DAYS = 365.0

# Listing pages (DJ, search, front page) one crawl follows at most, per worker: a listing whose
# "next" link is a fresh URL on every answer must not page on for ever.
CRAWL_MAX_LISTING_PAGES = 10_000

# Several workers on one frontier (README "Several workers"): off until REDIS_URL is given (the
# environment, as DATABASE_URL, so no password shows in `ps`; `-s REDIS_URL=…` overrides it).
# Workers with the same FRONTIER_NAME (default: the spider's name) share the queue, the duplicate
# filter and DOWNLOAD_DELAY; a worker leaves after MAX_IDLE_TIME_BEFORE_CLOSE idle seconds, counts
# as dead after FRONTIER_WORKER_TIMEOUT seconds without a heartbeat, and rides out a Redis that
# does not answer for FRONTIER_REDIS_OUTAGE_TIMEOUT seconds before it stops (exit 1).
REDIS_URL = ""
FRONTIER_NAME = ""
MAX_IDLE_TIME_BEFORE_CLOSE = 60
FRONTIER_HEARTBEAT = 2.0
FRONTIER_WORKER_TIMEOUT = 30.0
FRONTIER_TURN_TIMEOUT = 60.0
FRONTIER_REDIS_OUTAGE_TIMEOUT = 300.0

# The block-page, page-size, incremental and listing-budget middlewares (scrapers/spiders/addon.py).
ADDONS: dict[str, int] = {"scrapers.spiders.addon.CrawlMiddlewares": 0}

ITEM_PIPELINES: dict[str, int] = {
    "scrapers.pipelines.enrichment_pipeline.EnrichmentPipeline": 300,
    "scrapers.pipelines.database_pipeline.DatabasePipeline": 800,
}

# Database pipeline (README "The database pipeline"). A batch is written when it holds
# DATABASE_BATCH_SIZE items or its oldest item waited DATABASE_BATCH_MAX_LATENCY seconds. A lost
# database is retried for DATABASE_RETRY_TIMEOUT seconds; after that, batches go to a JSON-lines
# file in DATABASE_SPOOL_DIR as they fill, the database is probed every DATABASE_PROBE_INTERVAL
# seconds, and the crawl exits with status 1. An invalid value stops the crawl (exit 2).
DATABASE_BATCH_SIZE = 500
DATABASE_BATCH_MAX_LATENCY = 5.0
DATABASE_RETRY_TIMEOUT = 60.0
DATABASE_PROBE_INTERVAL = 10.0
DATABASE_SPOOL_DIR = "spool"
# `scrapy crawl` exits non-zero when items had to be spooled (scrapers/commands/crawl.py).
COMMANDS_MODULE = "scrapers.commands"

# Prometheus (README "Metrics"): served on 127.0.0.1 during a crawl; 0 picks a free port,
# PROMETHEUS_ENABLED = False turns it off. With PROMETHEUS_PUSHGATEWAY_URL set, the final values
# are also pushed there when the crawl ends.
PROMETHEUS_ENABLED = True
PROMETHEUS_HOST = "127.0.0.1"
PROMETHEUS_PORT = "9410"  # checked where it is used
PROMETHEUS_PUSHGATEWAY_URL = ""
PROMETHEUS_JOB = "tracklists_crawl"
EXTENSIONS = {"scrapers.extensions.metrics_server.MetricsServer": 500}
# Scrapy's own telnet console and remote-control server are not used: no listener we do not need.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False

# Enrichment (ISRC and metadata from MusicBrainz, Deezer, Spotify). README "Enrichment".
# "deferred": store tracks at once and mark them for the backfill service; "inline": look up
# during the crawl. Deferred is the default because MusicBrainz allows 1 request/s while a crawl
# yields several tracks per second.
ENRICHMENT_MODE = "deferred"
# MusicBrainz asks for an application name, version and a way to reach its operator.
ENRICHMENT_CONTACT = PROJECT_CONTACT_URL
ENRICHMENT_MUSICBRAINZ_URL = "https://musicbrainz.org"
ENRICHMENT_DEEZER_URL = "https://api.deezer.com"
ENRICHMENT_SPOTIFY_API_URL = "https://api.spotify.com"
ENRICHMENT_SPOTIFY_ACCOUNTS_URL = "https://accounts.spotify.com"
# Sustained requests per second per source: MusicBrainz allows 1/s, Deezer about 50 per 5 s.
# ENRICHMENT_RATES (and ENRICHMENT_CACHE_TTL) hold changes per source over the _BASE values.
ENRICHMENT_RATES_BASE = {"musicbrainz": 1.0, "deezer": 9.5, "spotify": 5.0}
ENRICHMENT_RATES: dict[str, float] = {}
# Seconds an answer stays in the PostgreSQL response cache; "not found" answers expire sooner.
ENRICHMENT_CACHE_TTL_BASE = {"musicbrainz": 30 * 86400, "deezer": 7 * 86400, "spotify": 7 * 86400}
ENRICHMENT_CACHE_TTL: dict[str, float] = {}
ENRICHMENT_NEGATIVE_CACHE_TTL = 86400
# A search candidate is taken only at or above this confidence (0..1), and only when no
# candidate naming a different recording scores within the margin of it.
ENRICHMENT_MATCH_THRESHOLD = 0.8
ENRICHMENT_AMBIGUITY_MARGIN = 0.05
# An ISRC lookup's answer must still resemble the track (labels attach wrong ISRCs).
ENRICHMENT_ISRC_MATCH_THRESHOLD = 0.5
ENRICHMENT_MAX_ATTEMPTS = 4
ENRICHMENT_BACKOFF_BASE = 1.0
ENRICHMENT_MAX_RETRY_AFTER = 120.0
ENRICHMENT_TIMEOUT = 15.0
# Consecutive failed calls that open a source's circuit, and seconds before it is tried again.
ENRICHMENT_BREAKER_FAILURES = 5
ENRICHMENT_BREAKER_RESET = 60.0
# Lookups in flight at once (threads), in the pipeline and in the service.
ENRICHMENT_CONCURRENCY = 4
# The service retries a track whose lookup failed or found nothing after this many seconds.
ENRICHMENT_RETRY_FAILED_AFTER = 6 * 3600
ENRICHMENT_SERVICE_HOST = "127.0.0.1"
# Text from the environment is checked where it is used (EnrichmentConfig.from_settings), so a bad
# value is a one-line error rather than a crash while the settings load.
ENRICHMENT_SERVICE_PORT = "8086"
# Connections the service serves at once (uvicorn's limit_concurrency); more are answered 503.
ENRICHMENT_SERVICE_MAX_CONNECTIONS = 32
# Seconds a client has to send a request's head, and then its body; slower ones are cut off. Also
# how long an idle kept-alive connection stays open (uvicorn's timeout_keep_alive).
ENRICHMENT_SERVICE_REQUEST_TIMEOUT = 10.0
# Seconds /metrics reuses the catalogue counts (one scan of tracks) before counting again.
ENRICHMENT_CATALOGUE_METRICS_TTL = 60.0
# Seconds a service worker holds the tracks it claimed; a killed worker's tracks are free after.
ENRICHMENT_CLAIM_LEASE = 900.0
# Prefix of the shared rate-limit keys in Redis (used when REDIS_URL is set).
ENRICHMENT_REDIS_KEY_PREFIX = "tracklists:enrichment:"

# The web explorer (tracklists-web). Host and port from the environment are checked where used.
EXPLORER_HOST = "127.0.0.1"
EXPLORER_PORT = "8087"
# A connection string for the explorer alone (a read-only role, a replica); else DATABASE_URL.
EXPLORER_DATABASE_URL = ""
# Milliseconds one query of a page may run before PostgreSQL cancels it (the page gets 503).
EXPLORER_STATEMENT_TIMEOUT_MS = 5000
# Database connections the explorer keeps and uses at once; a request waits for a free one.
EXPLORER_DATABASE_CONNECTIONS = 8
# Connections served at once (uvicorn's limit_concurrency) and seconds to send a request.
EXPLORER_MAX_CONNECTIONS = 64
EXPLORER_REQUEST_TIMEOUT = 10.0

LOG_LEVEL = "INFO"
FEED_EXPORT_ENCODING = "utf-8"
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"


def from_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The settings ``environ`` gives, over the values above: secrets and locations (so no
    password shows in ``ps``)."""
    names = (
        "DATABASE_URL",
        "DATABASE_SPOOL_DIR",
        "REDIS_URL",
        "PROMETHEUS_PORT",
        "PROMETHEUS_PUSHGATEWAY_URL",
        "ENRICHMENT_CONTACT",
        "ENRICHMENT_SERVICE_HOST",
        "ENRICHMENT_SERVICE_PORT",
        "EXPLORER_HOST",
        "EXPLORER_PORT",
        "EXPLORER_DATABASE_URL",
    )
    return {name: environ[name] for name in names if name in environ}


globals().update(from_environment())
# Built from ENRICHMENT_CONTACT once the environment had its say.
ENRICHMENT_USER_AGENT = f"tracklists-catalogue/0.1 ( {ENRICHMENT_CONTACT} )"
