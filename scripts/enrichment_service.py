"""Start an enrichment service worker.

    python scripts/enrichment_service.py [--host H] [--port P] [--every SECONDS]
                                         [--max-tracks N] [-s NAME=VALUE ...]

Serves ``POST /enrich/batch``, ``GET /health`` and ``GET /metrics`` on 127.0.0.1:8086 by default
(``ENRICHMENT_SERVICE_HOST`` / ``ENRICHMENT_SERVICE_PORT``). ``--every SECONDS`` also runs a
batch of ``--max-tracks`` (default 100) at start and then at that interval. Run as many workers
as you like, on one machine or many: they claim disjoint tracks and share each source's rate
limit (in Redis when ``REDIS_URL`` is set, else in PostgreSQL). Settings come from
``scrapers/settings.py``; ``-s NAME=VALUE`` overrides one, as with ``scrapy crawl``. Exit 2 on an
invalid setting or argument, or a database that cannot be used.
"""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import closing

import redis

from scrapers.db.server.connection import (
    NO_DATABASE_ERRORS,
    connect,
    one_line,
    redacted,
    resolve_database_url,
)
from scrapers.db.server.migrations import SchemaTooOld, require_current_schema
from scrapers.enrichment.backfill import Backfill
from scrapers.enrichment.cache import ResponseCache
from scrapers.enrichment.config import EnrichmentConfig
from scrapers.enrichment.enricher import Enricher
from scrapers.enrichment.ratelimit import shared_limiters
from scrapers.enrichment.service import DEFAULT_MAX_TRACKS, MAX_TRACKS_LIMIT, EnrichmentService
from scrapers.redis_url import redis_error
from scrapers.serving import add_settings_option, command_settings, serve_until_stopped

logger = logging.getLogger("enrichment_service")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    # --host and --port override their settings, so they are checked the one same way.
    parser.add_argument("--host", help="address to bind (default ENRICHMENT_SERVICE_HOST)")
    parser.add_argument("--port", help="port, 0 to 65535 (default ENRICHMENT_SERVICE_PORT)")
    parser.add_argument(
        "--every",
        type=interval_seconds,
        metavar="SECONDS",
        help="also run a batch at start and then every SECONDS (between 1 and 604800)",
    )
    parser.add_argument(
        "--max-tracks",
        type=track_count,
        default=DEFAULT_MAX_TRACKS,
        metavar="N",
        help=f"tracks per scheduled batch (default {DEFAULT_MAX_TRACKS}, at most"
        f" {MAX_TRACKS_LIMIT})",
    )
    add_settings_option(parser)
    args = parser.parse_args(argv)
    settings = command_settings(
        args.overrides, ENRICHMENT_SERVICE_HOST=args.host, ENRICHMENT_SERVICE_PORT=args.port
    )
    try:
        config = EnrichmentConfig.from_settings(settings)
        url = resolve_database_url(settings)
        with closing(connect(url, autocommit=True)) as connection:
            require_current_schema(connection)
    except (ValueError, SchemaTooOld, *NO_DATABASE_ERRORS) as error:
        print(f"Cannot start: {one_line(error)}", file=sys.stderr)
        return 2
    try:
        limiters = shared_limiters(config, url)
    except redis.RedisError as error:
        print(
            f"Cannot start: Redis at REDIS_URL: {redis_error(error, config.redis_url or '')}",
            file=sys.stderr,
        )
        return 2
    cache = ResponseCache(url, max_connections=config.concurrency)
    enricher = Enricher.from_config(config, cache, limiters)
    address = (config.service_host, config.service_port)
    try:
        service = EnrichmentService(address, Backfill(url, config, enricher))
    except OSError as error:  # the port is in use, or the host is not an address of this machine
        print(f"Cannot start: cannot listen on {address[0]}:{address[1]}: {error}", file=sys.stderr)
        cache.close()
        for limiter in limiters.values():
            limiter.close()
        return 2
    logger.info(
        "Enrichment service on %s (database %s; sources %s; rate limits shared in %s)",
        service.url,
        redacted(url),
        ", ".join(config.enabled_sources()),
        "Redis" if config.redis_url else "PostgreSQL",
    )
    if args.every is not None:
        logger.info("A batch of %d tracks every %g s", args.max_tracks, args.every)
        service.start_schedule(args.every, args.max_tracks)
    # A batch cut short by Ctrl-C or SIGTERM loses only its lookups in flight: each track is
    # committed on its own, and its claims expire with their lease.
    try:
        serve_until_stopped(service, logger)
    finally:
        cache.close()
        for limiter in limiters.values():
            limiter.close()
    return 0


def interval_seconds(text: str) -> float:
    """``--every``: a finite number of seconds, at least 1 and at most a week."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 1 <= seconds <= 7 * 86400:
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds between 1 and 604800, got {text[:50]!r}"
        )
    return seconds


def track_count(text: str) -> int:
    """``--max-tracks``: the same bounds as a batch asked for over HTTP."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_TRACKS_LIMIT:
        raise argparse.ArgumentTypeError(
            f"must be an integer between 1 and {MAX_TRACKS_LIMIT}, got {text[:50]!r}"
        )
    return int(text)


if __name__ == "__main__":
    sys.exit(main())
