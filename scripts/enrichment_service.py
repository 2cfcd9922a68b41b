"""Start the enrichment service: ``python scripts/enrichment_service.py [--host H] [--port P]``.

Serves ``POST /enrich/batch``, ``GET /health`` and ``GET /metrics`` on 127.0.0.1:8086 by default
(``ENRICHMENT_SERVICE_HOST`` / ``ENRICHMENT_SERVICE_PORT``). Settings come from
``scrapers/settings.py``; ``-s NAME=VALUE`` overrides one, as with ``scrapy crawl``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from contextlib import closing

from scrapy.utils.project import get_project_settings

from scrapers.db.connection import (
    NO_DATABASE_ERRORS,
    connect,
    one_line,
    redacted,
    resolve_database_url,
)
from scrapers.enrichment.backfill import Backfill
from scrapers.enrichment.cache import ResponseCache
from scrapers.enrichment.config import EnrichmentConfig
from scrapers.enrichment.enricher import Enricher
from scrapers.enrichment.service import EnrichmentService

logger = logging.getLogger("enrichment_service")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", help="address to bind (default ENRICHMENT_SERVICE_HOST)")
    parser.add_argument("--port", type=int, help="port (default ENRICHMENT_SERVICE_PORT)")
    parser.add_argument(
        "-s",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a setting",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "scrapers.settings")
    settings = get_project_settings()
    for override in args.overrides:
        name, _, value = override.partition("=")
        settings.set(name, value, priority="cmdline")
    logging.basicConfig(
        level=settings.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s [%(name)s] %(levelname)s: %(message)s",
    )
    try:
        config = EnrichmentConfig.from_settings(settings)
        url = resolve_database_url(settings)
        with closing(connect(url, autocommit=True)) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('enrichment_cache') IS NOT NULL")
            if not cursor.fetchone()[0]:
                print("The schema is not current: run `python scripts/migrate.py up` first.")
                return 2
    except (ValueError, *NO_DATABASE_ERRORS) as error:
        print(f"Cannot start: {one_line(error)}")
        return 2
    host = args.host or config.service_host
    port = config.service_port if args.port is None else args.port
    cache = ResponseCache(url, max_connections=config.concurrency)
    enricher = Enricher.from_config(config, cache)
    service = EnrichmentService((host, port), Backfill(url, config, enricher))
    logger.info(
        "Enrichment service on %s (database %s; sources %s)",
        service.url,
        redacted(url),
        ", ".join(config.enabled_sources()),
    )
    # SIGTERM (systemd, docker stop) ends like Ctrl-C. A batch cut short loses only its lookups
    # in flight: each track is committed on its own, and the batch lock dies with the session.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        service.serve_forever()
    except KeyboardInterrupt:
        logger.info("Stopping")
    finally:
        service.server_close()
        cache.close()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
