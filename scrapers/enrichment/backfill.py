"""The backfill: enrich stored tracks that have no ISRC, one bounded batch at a time.

Tracks never tried (``pending``) are taken, and those whose last try found nothing or failed
longer than ``ENRICHMENT_RETRY_FAILED_AFTER`` ago (``force_refresh`` takes those at once and
bypasses the response cache); those the backfill never checked first, then the longest
unchecked. Each batch ends by deleting the response cache's expired answers, which nothing
reads again.

Several workers (service processes, on one machine or many) run batches at once. A batch claims
its tracks a few at a time (``FOR UPDATE SKIP LOCKED``, then a lease of
``ENRICHMENT_CLAIM_LEASE`` seconds in ``tracks.enrichment_claimed_by/_until``), so workers take
disjoint tracks. A worker killed mid-batch leaves claims that expire with their lease. A result
is stored only while its worker still holds the claim, so a track is never written by two
workers, even one whose lease ran out.

A shared rate limit whose store (Redis or PostgreSQL) does not answer means "the source is
unavailable now", not "this track failed": its tracks are handed back unmarked (``deferred``,
counted in ``enrichment_rate_limit_unavailable_total{source}``), so the next batch takes them
again, and the batch stops claiming.

Lookups run in ``ENRICHMENT_CONCURRENCY`` threads; each result is written in a transaction of
its own through ``scrapers.db.write.conflicts.assign_identifiers``, the same conflict policy as the
batch writer. An ISRC that another track already owns stays there and the conflict is recorded:
never an escaped unique violation, and a crash loses at most the lookups in flight.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass
from typing import Any

import psycopg2
import psycopg2.extensions

from scrapers import metrics
from scrapers.db import enrichment_queue as queue
from scrapers.db.server.connection import connect
from scrapers.db.write.conflicts import assign_identifiers
from scrapers.db.write.fields import Rejected
from scrapers.enrichment.config import EnrichmentConfig
from scrapers.enrichment.enricher import Enricher, EnrichmentResult, TrackQuery
from scrapers.enrichment.ratelimit import RateLimitUnavailableError
from scrapers.statuses import EnrichmentStatus

logger = logging.getLogger(__name__)

ORIGIN = "enrichment"
IDENTIFIERS = ("isrc", "spotify_id")
# Tracks claimed at once, per lookup thread: enough to keep the threads busy, few enough that a
# claim is looked up long before its lease ends.
CLAIM_PER_THREAD = 2


def worker_name() -> str:
    """This worker's claim tag: host and process, readable in ``tracks.enrichment_claimed_by``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class BatchCounts:
    tried: int = 0
    enriched: int = 0
    not_found: int = 0
    failed: int = 0
    conflicts: int = 0
    # Looked up, but the lease ran out and another worker claimed the track: not stored here.
    claims_lost: int = 0
    # Not looked up: a shared rate limit's store did not answer. Handed back unmarked.
    deferred: int = 0
    cache_purged: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class StoredTrack:
    id: str
    query: TrackQuery


class Backfill:
    def __init__(self, database_url: str, config: EnrichmentConfig, enricher: Enricher) -> None:
        self.database_url = database_url
        self.config = config
        self.enricher = enricher

    def run(self, *, max_tracks: int, force_refresh: bool = False) -> BatchCounts:
        """Claim and enrich up to ``max_tracks`` tracks that no other worker holds."""
        counts = BatchCounts()
        worker = worker_name()
        chunk = self.config.concurrency * CLAIM_PER_THREAD
        with (
            closing(connect(self.database_url)) as connection,
            ThreadPoolExecutor(self.config.concurrency, "backfill") as pool,
        ):
            started = queue.database_time(connection)
            taken = 0
            try:
                while taken < max_tracks:
                    claimed = queue.claim(
                        connection,
                        worker,
                        limit=min(chunk, max_tracks - taken),
                        force=force_refresh,
                        started=started,
                        retry_after=self.config.retry_failed_after,
                        lease=self.config.claim_lease,
                    )
                    tracks = [
                        StoredTrack(c.id, TrackQuery(c.artist, c.title, c.known)) for c in claimed
                    ]
                    if not tracks:
                        break
                    taken += len(tracks)
                    results = pool.map(lambda t: self._enrich(t, force_refresh), tracks)
                    deferred: dict[str, RateLimitUnavailableError] = {}
                    for track, result in zip(tracks, results, strict=True):
                        if isinstance(result, RateLimitUnavailableError):
                            metrics.ENRICHMENT_RATE_LIMIT_UNAVAILABLE.labels(result.source).inc()
                            deferred[track.id] = result
                        else:
                            self._store(connection, worker, track, result, counts)
                    if deferred:
                        counts.deferred += len(deferred)
                        queue.release(connection, worker, list(deferred))
                        logger.warning(
                            "%s: %d tracks handed back for a later batch; this batch stops",
                            next(iter(deferred.values())), len(deferred),
                        )  # fmt: skip
                        break
            finally:
                connection.rollback()
                queue.release(connection, worker)
            if self.enricher.cache is not None:
                counts.cache_purged = self.enricher.cache.purge_expired()
        logger.info("Enrichment batch done: %s", counts.as_dict())
        return counts

    def _enrich(
        self, track: StoredTrack, force_refresh: bool
    ) -> EnrichmentResult | RateLimitUnavailableError:
        try:
            return self.enricher.enrich(track.query, refresh=force_refresh)
        except RateLimitUnavailableError as error:
            return error  # the source is unavailable now: nothing is known about the track
        except Exception as error:  # a bug must cost one track, not the batch
            logger.exception("Enrichment of track %s failed", track.id)
            return EnrichmentResult(
                status=EnrichmentStatus.FAILED, errors=[f"internal error: {error}"]
            )

    def _store(
        self,
        connection: psycopg2.extensions.connection,
        worker: str,
        track: StoredTrack,
        result: EnrichmentResult,
        counts: BatchCounts,
    ) -> None:
        if not queue.still_claimed(connection, worker, track.id):
            connection.rollback()
            logger.warning("Track %s: claim lost (lease expired); result not stored", track.id)
            counts.claims_lost += 1
            return
        counts.tried += 1
        try:
            conflicts = self._apply(connection, track, result)
        except (psycopg2.Error, Rejected, LookupError) as error:
            connection.rollback()
            logger.error("Could not store enrichment of track %s: %s", track.id, error)
            result = EnrichmentResult(
                status=EnrichmentStatus.FAILED, errors=[f"store: {error}"[:300]]
            )
            self._mark(connection, track.id, result)
            conflicts = 0
        connection.commit()
        counts.conflicts += conflicts
        metrics.ENRICHMENT_CONFLICTS.inc(conflicts)
        counts.enriched += result.status == EnrichmentStatus.ENRICHED
        counts.not_found += result.status == EnrichmentStatus.NOT_FOUND
        counts.failed += result.status == EnrichmentStatus.FAILED

    def _apply(
        self,
        connection: psycopg2.extensions.connection,
        track: StoredTrack,
        result: EnrichmentResult,
    ) -> int:
        """Values through the conflict policy, then status and provenance of what was applied."""
        values = {k: v for k, v in result.values.items() if k not in IDENTIFIERS}
        outcome = assign_identifiers(
            connection,
            track.id,
            isrc=result.values.get("isrc"),
            spotify_id=result.values.get("spotify_id"),
            values=values,
            origin=ORIGIN,
        )
        applied = {name for name in result.provenance if name not in IDENTIFIERS}
        applied |= set(outcome.assigned)
        enrichment = result.metadata()
        enrichment["fields"] = {k: v for k, v in result.provenance.items() if k in applied}
        if outcome.conflicts:
            enrichment["conflicts"] = [
                {
                    "identifier": c.identifier_type,
                    "value": c.incoming_value,
                    "owner": c.other_track_id,
                    "resolution": c.resolution,
                }
                for c in outcome.conflicts
            ]
        self._mark(connection, track.id, result, enrichment)
        return len(outcome.conflicts)

    @staticmethod
    def _mark(
        connection: psycopg2.extensions.connection,
        track_id: str,
        result: EnrichmentResult,
        enrichment: dict[str, Any] | None = None,
    ) -> None:
        """Status, check time and this run's report, claim released; earlier provenance kept."""
        enrichment = enrichment or result.metadata()
        report = {k: v for k, v in enrichment.items() if k != "fields"}
        queue.mark_checked(
            connection, track_id, result.status, report, enrichment.get("fields", {})
        )
