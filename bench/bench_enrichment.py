"""Enrichment throughput against the fake sources: are the rate limits, not our code, the bound?

    python -m bench.bench_enrichment [--tracks 200] [--musicbrainz-rate 20] [--workers 8]
                                     [--latency 0.05] [--spotify]

A synthetic catalogue is served by the local fake MusicBrainz and Deezer (and Spotify with
``--spotify``), each answer taking ``--latency`` seconds like a service across the internet;
every track arrives without an ISRC, as a crawl delivers it. The passes:

* baseline: one lookup at a time (each track waits for the previous one's every request);
* ours: ``--workers`` lookups in flight, as the pipeline and the service run them;
* cached: the same tracks again through the PostgreSQL response cache (expect zero requests);
* 3 workers (postgresql), 3 workers (redis): ``--tracks`` other tracks stored in the database
  and backfilled by three workers at once, each claiming its own tracks and running
  ``--workers`` lookups, all sharing each source's rate limit through PostgreSQL, then through
  Redis (``REDIS_URL``, else 127.0.0.1:6379; the pass is left out when no Redis answers). The
  workers are three ``Backfill`` objects in this process: they share nothing in memory, only
  the database and the limit's store, as three service processes would.

Printed: requests per enriched track, the share of the elapsed time spent waiting on rate
limits, and the share of MusicBrainz's allowed request rate actually used (target >= 90%, for
one worker and for three sharing the rate). The fakes enforce the configured rates, so a limiter
that cheated would meet 503s and retries.

The bench runs 20 times faster than production (MusicBrainz at 20 req/s instead of 1), so our
per-request CPU cost weighs 20 times more against the rate limit; hence 8 workers here, where
production's ``ENRICHMENT_CONCURRENCY`` of 4 already leaves ample headroom at 1 req/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import replace

import psycopg2.extensions
import redis
from psycopg2 import sql

from scrapers.db.server import migrations
from scrapers.db.server.connection import connect, resolve_database_url
from scrapers.db.write.writer import BatchWriter
from scrapers.enrichment.backfill import Backfill
from scrapers.enrichment.cache import ResponseCache
from scrapers.enrichment.config import EnrichmentConfig
from scrapers.enrichment.enricher import Enricher, TrackQuery
from scrapers.enrichment.ratelimit import shared_limiters
from scrapers.statuses import EnrichmentStatus
from tests.fakes.fixtures import SPOTIFY_ID, SPOTIFY_SECRET, Fakes, recording
from tests.fakes.sources import FakeDeezer, FakeMusicBrainz, FakeSpotify, Recording


def run_pass(
    fakes: Fakes,
    enricher: Enricher,
    queries: list[TrackQuery],
    workers: int,
    allowed_rate: float,
) -> dict[str, float]:
    before = sent_so_far(fakes)
    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(enricher.enrich, queries))
    elapsed = time.monotonic() - started
    return pass_figures(
        fakes,
        before,
        elapsed,
        enriched=sum(result.status == EnrichmentStatus.ENRICHED for result in results),
        waited=sum(client.limiter.waited_seconds for client in enricher.clients),
        threads=workers,
        allowed_rate=allowed_rate,
    )


def run_workers_pass(
    fakes: Fakes,
    url: str,
    config: EnrichmentConfig,
    catalogue: list[Recording],
    allowed_rate: float,
) -> dict[str, float]:
    """Store ``catalogue`` as tracks; ``WORKERS`` backfills take them all, sharing the limits."""
    with BatchWriter(url, origin="bench") as writer:
        writer.write([{"artist": r.artist, "title": r.title} for r in catalogue])
    limiter_sets = [shared_limiters(config, url) for _ in range(WORKERS)]
    backfills = [
        Backfill(url, config, Enricher.from_config(config, None, limiters))
        for limiters in limiter_sets
    ]
    before = sent_so_far(fakes)
    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        counts = list(pool.map(lambda b: b.run(max_tracks=len(catalogue)), backfills))
    elapsed = time.monotonic() - started
    limiters = [limiter for limiter_set in limiter_sets for limiter in limiter_set.values()]
    for limiter in limiters:
        limiter.close()
    return pass_figures(
        fakes,
        before,
        elapsed,
        enriched=sum(c.enriched for c in counts),
        waited=sum(limiter.waited_seconds for limiter in limiters),
        threads=WORKERS * config.concurrency,
        allowed_rate=allowed_rate,
    )


def sent_so_far(fakes: Fakes) -> dict[str, int]:
    sent = {name: len(getattr(fakes, name).api_requests()) for name in _SOURCES}
    return sent | {"throttled": fakes.musicbrainz.throttled}


def pass_figures(
    fakes: Fakes,
    before: dict[str, int],
    elapsed: float,
    *,
    enriched: int,
    waited: float,
    threads: int,
    allowed_rate: float,
) -> dict[str, float]:
    after = sent_so_far(fakes)
    sent = {name: after[name] - before[name] for name in _SOURCES}
    return {
        "elapsed": elapsed,
        "enriched": enriched,
        "requests": sum(sent.values()),
        "musicbrainz": sent["musicbrainz"],
        "per_track": sum(sent.values()) / enriched if enriched else 0.0,
        # Rate-limiter waits summed over the lookup threads, over the threads' total time.
        "wait_share": waited / (elapsed * threads),
        "mb_utilisation": sent["musicbrainz"] / (elapsed * allowed_rate),
        "throttled": after["throttled"] - before["throttled"],
    }


def local_redis(config: EnrichmentConfig) -> EnrichmentConfig | None:
    """``config`` with its limits in Redis under a fresh key prefix, or None without Redis."""
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    except redis.RedisError:
        return None
    return replace(config, redis_url=redis_url, redis_key_prefix=f"bench:{uuid.uuid4().hex}:")


def forget_redis_keys(config: EnrichmentConfig) -> None:
    client = redis.Redis.from_url(config.redis_url or "")
    keys = list(client.scan_iter(match=f"{config.redis_key_prefix}*"))
    if keys:
        client.delete(*keys)


WORKERS = 3
_SOURCES = ("musicbrainz", "deezer", "spotify")


def print_pass(name: str, figures: dict[str, float]) -> None:
    print(
        f"{name:22} {figures['elapsed']:7.2f} s  {figures['enriched']:4.0f} enriched"
        f"  {figures['requests']:5.0f} requests ({figures['per_track']:.2f}/enriched track)"
        f"  waiting on rate limits {figures['wait_share']:6.1%}"
        f"  MusicBrainz rate used {figures['mb_utilisation']:6.1%}"
    )


def scratch_database() -> tuple[str, str]:
    server = resolve_database_url()
    name = f"bench_enrichment_{uuid.uuid4().hex[:8]}"
    with closing(connect(server, autocommit=True)) as admin, admin.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg2.extensions.make_dsn(server, dbname=name)
    migrations.upgrade(url)
    return server, url


def drop_database(server: str, url: str) -> None:
    name = psycopg2.extensions.parse_dsn(url)["dbname"]
    with closing(connect(server, autocommit=True)) as admin, admin.cursor() as cursor:
        cursor.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=200)
    parser.add_argument("--musicbrainz-rate", type=float, default=20.0)
    parser.add_argument("--deezer-rate", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per fake answer")
    parser.add_argument("--spotify", action="store_true", help="also ask the fake Spotify")
    args = parser.parse_args()

    catalogue = [
        recording(n, f"Bench Artist {n}", f"Bench Title {n}") for n in range(1, args.tracks + 1)
    ]
    # Tracks for the passes of three workers: other titles, so no cached answer serves them.
    stored = {
        backend: [
            recording(n, f"Stored {backend} Artist {n}", f"Stored {backend} Title {n}")
            for n in range(offset + 1, offset + args.tracks + 1)
        ]
        for backend, offset in (("postgresql", 10_000), ("redis", 20_000))
    }
    queries = [TrackQuery(r.artist, r.title) for r in catalogue]
    known = catalogue + stored["postgresql"] + stored["redis"]
    server, url = scratch_database()
    try:
        with (
            FakeMusicBrainz(known, rate=args.musicbrainz_rate) as musicbrainz,
            FakeDeezer(known) as deezer,
            FakeSpotify(known, client_id=SPOTIFY_ID, client_secret=SPOTIFY_SECRET) as spotify,
        ):
            fakes = Fakes(musicbrainz, deezer, spotify, known)
            for fake in (musicbrainz, deezer, spotify):
                fake.latency = args.latency
            config = replace(
                fakes.config(spotify=args.spotify),
                concurrency=args.workers,
            )
            config = config.with_source("musicbrainz", rate=args.musicbrainz_rate)
            config = config.with_source("deezer", rate=args.deezer_rate)
            config = config.with_source("spotify", rate=args.deezer_rate)
            print(
                f"{args.tracks} tracks without ISRC; MusicBrainz {args.musicbrainz_rate:g} req/s,"
                f" Deezer {args.deezer_rate:g} req/s{', Spotify' if args.spotify else ''};"
                f" {args.latency * 1000:g} ms per answer; {args.workers} lookups per worker"
            )
            baseline = run_pass(
                fakes, Enricher.from_config(config, None), queries, 1, args.musicbrainz_rate
            )
            print_pass("baseline", baseline)
            cache = ResponseCache(url, max_connections=args.workers)
            try:
                # The same tracks twice through one cache: the second pass must send nothing.
                ours, cached = (
                    run_pass(
                        fakes,
                        Enricher.from_config(config, cache),
                        queries,
                        args.workers,
                        args.musicbrainz_rate,
                    )
                    for _ in range(2)
                )
                print_pass("ours", ours)
                print_pass("cached", cached)
            finally:
                cache.close()
            shared = {
                "postgresql": run_workers_pass(
                    fakes, url, config, stored["postgresql"], args.musicbrainz_rate
                )
            }
            print_pass("3 workers (postgresql)", shared["postgresql"])
            redis_config = local_redis(config)
            if redis_config is None:
                print("3 workers (redis): left out, no Redis answered")
            else:
                try:
                    shared["redis"] = run_workers_pass(
                        fakes, url, redis_config, stored["redis"], args.musicbrainz_rate
                    )
                finally:
                    forget_redis_keys(redis_config)
                print_pass("3 workers (redis)", shared["redis"])
    finally:
        drop_database(server, url)
    print(
        f"speed-up over baseline: {baseline['elapsed'] / ours['elapsed']:.2f}x;"
        f" MusicBrainz 503s seen: {ours['throttled']:.0f} (one worker),"
        f" {sum(f['throttled'] for f in shared.values()):.0f} (three workers);"
        f" cached pass requests: {cached['requests']:.0f}"
    )
    for name, figures in shared.items():
        print(
            f"3 workers ({name}) vs one: {figures['mb_utilisation'] / ours['mb_utilisation']:.2f}x"
            f" the MusicBrainz rate used, {figures['per_track'] / ours['per_track']:.2f}x"
            " the requests per enriched track"
        )
    target_met = (
        all(f["mb_utilisation"] >= 0.9 for f in (ours, *shared.values()))
        and all(f["throttled"] == 0 for f in shared.values())
        and cached["requests"] == 0
    )
    print(
        "target (>= 90% of MusicBrainz's rate with one worker and with three sharing it,"
        " no 503 with three, zero requests when cached):",
        "met" if target_met else "NOT met",
    )
    return 0 if target_met else 1


if __name__ == "__main__":
    sys.exit(main())
