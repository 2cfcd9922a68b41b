"""Every Prometheus metric of the project, defined once.

Components import the metric objects from here; nothing else calls ``Counter(...)``. All live in
the default registry, which the crawl serves at ``/metrics`` and batch runs can push to a
Pushgateway.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    push_to_gateway,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from scrapers.statuses import (
    SOURCES,
    ConflictResolution,
    EnrichmentStatus,
    IdentifierType,
    RejectionCode,
)

logger = logging.getLogger(__name__)


# The values of the labels that are no catalogue status (those are in scrapers.statuses), each
# with the metric it labels.


class MatchTier(StrEnum):
    """How an item was actually matched (``tracks_matched_total{tier}``), as opposed to
    ``TrackRecord.tier``, the strongest identifier it carried."""

    ISRC = "isrc"
    SPOTIFY = "spotify"
    SPELLING = "spelling"  # a raw spelling already known (track_lookup, or earlier in the batch)
    TITLE = "title"
    NEW = "new"


class RowChange(StrEnum):
    """How a stored setlist row followed its page (the ``change`` label)."""

    ADDED = "added"
    UPDATED = "updated"
    REMOVED = "removed"


class SkipReason(StrEnum):
    """Why a known tracklist is not fetched again (the ``reason`` label and stat)."""

    REFRESH_NONE = "refresh_none"
    RECENT_CHECKED = "recent_checked"
    ID_ROWS_CHECKED = "id_rows_checked"
    COMPLETE = "complete"
    ID_ROWS_TOO_OLD = "id_rows_too_old"


class RefreshOutcome(StrEnum):
    """What a due tracklist's page turned out to be, against its stored digest."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"


class RowOutcome(StrEnum):
    """What the importer did with a row before the writer: ``import_rows_total{outcome}``."""

    SENT = "sent"  # handed to the writer
    DUPLICATE = "duplicate"  # the same row was already sent by this run
    KNOWN = "known"  # an earlier import stored it (``known_rows``): not sent
    SKIPPED = "skipped"  # the format says it is not a track (a podcast, a local file)
    UNREADABLE = RejectionCode.UNREADABLE.value  # kept in rejected_items with that code


# Track items stored, by the strongest identifier they carried (the conflict target used).
# Names are fixed: dashboards and the testing plan refer to them.
TRACKS_UPSERT_ISRC = Counter("tracks_upsert_isrc", "Track items stored via ISRC match or insert")
TRACKS_UPSERT_SPOTIFY = Counter(
    "tracks_upsert_spotify", "Track items stored via Spotify ID (no ISRC on the item)"
)
TRACKS_UPSERT_TITLE = Counter(
    "tracks_upsert_title", "Track items stored via normalised artist + title (no identifier)"
)
TRACKS_MATCHED = Counter(
    "tracks_matched",
    "Track items by how they were actually matched: isrc, spotify, spelling (a known raw"
    " spelling), title, or new (no match: a track was created)",
    ["tier"],
)

# The batch writer (scrapers.db.write.writer): what happened to each item, and how long flushes
# take.
TRACKS_WRITTEN = Counter(
    "tracks_written",
    "Track items stored, by whether they created a track or updated an existing one",
    ["result"],
)
ITEMS_REJECTED = Counter(
    "items_rejected", "Items refused and kept in rejected_items, by reason code", ["reason"]
)
INVALID_IDENTIFIERS = Counter(
    "invalid_identifiers",
    "Identifiers that failed validation; stored as NULL with the raw value in metadata",
    ["identifier_type"],
)
IDENTIFIER_CONFLICTS = Counter(
    "identifier_conflicts",
    "Identifier conflicts recorded in identifier_conflicts",
    ["identifier_type", "resolution"],
)
BATCH_FLUSH_SECONDS = Histogram(
    "batch_flush_seconds",
    "Time to write one batch to PostgreSQL, retries included",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
ITEMS_SPOOLED = Counter(
    "items_spooled", "Items the database pipeline could not write and saved to a spool file"
)

# Enrichment (scrapers/enrichment): what each source was asked and how the lookups ended.
ENRICHMENT_REQUESTS = Counter(
    "enrichment_requests",
    "HTTP requests sent to metadata sources, by source and outcome (HTTP status or error kind)",
    ["source", "status"],
)
ENRICHMENT_CACHE_HITS = Counter(
    "enrichment_cache_hits", "Source answers served from the response cache", ["source"]
)
ENRICHMENT_RATE_LIMIT_WAIT = Counter(
    "enrichment_rate_limit_wait_seconds",
    "Seconds spent waiting for a source's rate limiter",
    ["source"],
)
ENRICHMENT_TRACKS = Counter(
    "enrichment_tracks", "Tracks looked up, by outcome (enriched, not_found, failed)", ["outcome"]
)
ENRICHMENT_ISRC_NOT_FOUND = Counter(
    "enrichment_isrc_not_found", "Tracks for which no source gave a valid ISRC"
)
ENRICHMENT_NOT_FOUND = Counter(
    "enrichment_not_found",
    "Tracks left without an ISRC, by why: source_down, no_isrc (the recording matched has "
    "none), ambiguous, below_threshold, no_candidates",
    ["reason"],
)
ENRICHMENT_CONFLICTS = Counter(
    "enrichment_conflicts", "Enriched identifiers already owned by another track (kept, recorded)"
)
ENRICHMENT_CIRCUIT_OPEN = Counter(
    "enrichment_circuit_open", "Calls refused because a source's circuit was open", ["source"]
)
ENRICHMENT_RATE_LIMIT_UNAVAILABLE = Counter(
    "enrichment_rate_limit_unavailable",
    "Track lookups put off because the store of a source's shared rate limit did not answer",
    ["source"],
)

# Crawling (scrapers/spiders): pages the site served instead of content, and decoy rows.
CRAWL_BLOCKED_PAGES = Counter(
    "crawl_blocked_pages",
    "Pages that were not content (interstitial, ip_limit, captcha, not_found, empty, not_html),"
    " by kind",
    ["kind"],
)
CRAWL_DECOY_ROWS = Counter(
    "crawl_decoy_rows",
    "Track rows whose visible artist disagreed with their microdata; the microdata was kept",
)
CRAWL_PAGES_TRUNCATED = Counter(
    "crawl_pages_truncated",
    "Tracklist pages with more rows than the parser keeps (parsing.MAX_ROWS); the rest dropped",
)
CRAWL_LISTING_PAGES_NOT_FOLLOWED = Counter(
    "crawl_listing_pages_not_followed",
    "Next listing pages not followed because the crawl had followed CRAWL_MAX_LISTING_PAGES",
)
CRAWL_PAGES_TOO_LARGE = Counter(
    "crawl_pages_too_large",
    "Pages dropped unread because they were larger than DOWNLOAD_MAXSIZE",
)

# Incremental crawls (scrapers/crawl/refresh.py): tracklists not fetched, and stored rows changed.
CRAWL_TRACKLISTS_SKIPPED = Counter(
    "crawl_tracklists_skipped",
    "Tracklists a listing showed that were not fetched, by reason (already stored, not due)",
    ["reason"],
)
CRAWL_TRACKLISTS_REFRESHED = Counter(
    "crawl_tracklists_refreshed",
    "Known tracklists fetched again because due, by outcome (changed, unchanged)",
    ["outcome"],
)
SETLISTS_OUTDATED = Counter(
    "setlists_outdated",
    "Setlists not written because the catalogue holds a newer fetch of their page (a spool"
    " replayed late, two workers); their tracks were stored, their rows and fields left",
)
SETLIST_ROWS_CHANGED = Counter(
    "setlist_rows_changed",
    "Stored setlist rows written because a page was new or changed: added, updated, removed",
    ["change"],
)


# Bulk import (scrapers/importers): rows read, by what became of them before the batch writer
# (sent to it, duplicate of an earlier row, skipped as not a track, unreadable).
IMPORT_ROWS = Counter(
    "import_rows", "Rows read by the bulk importer, by outcome before the writer", ["outcome"]
)

# The web explorer (scrapers/explorer/web): how long each request took. ``route`` is the route's
# template ("/track/{track_id}", "unmatched" for none), never the path, and ``status`` the class
# ("2xx"), so the series stay as few as the routes however many tracks are visited.
EXPLORER_REQUEST_SECONDS = Histogram(
    "explorer_request_duration_seconds",
    "Time to answer a web explorer request, by route template, method and status class",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# Every label value exported from the start, at 0: rates and alerts see each series at once
# instead of after its first event.
for _tier in MatchTier:
    TRACKS_MATCHED.labels(_tier)
for _change in RowChange:
    SETLIST_ROWS_CHANGED.labels(_change)
for _reason in SkipReason:
    CRAWL_TRACKLISTS_SKIPPED.labels(_reason)
for _refresh in RefreshOutcome:
    CRAWL_TRACKLISTS_REFRESHED.labels(_refresh)
for _outcome in RowOutcome:
    IMPORT_ROWS.labels(_outcome)
for _code in RejectionCode:
    ITEMS_REJECTED.labels(_code)
for _kind in IdentifierType:
    for _resolution in ConflictResolution:
        IDENTIFIER_CONFLICTS.labels(_kind, _resolution)
for _status in EnrichmentStatus.outcomes():
    ENRICHMENT_TRACKS.labels(_status)
for _source in SOURCES:
    ENRICHMENT_CIRCUIT_OPEN.labels(_source)
    ENRICHMENT_RATE_LIMIT_UNAVAILABLE.labels(_source)

# Schema (scripts/migrate.py). A registry of its own: migrate.py pushes only this gauge to the
# Pushgateway, not the writer's and importer's zeros that it never moves.
MIGRATION_REGISTRY = CollectorRegistry()
MIGRATIONS_PENDING = Gauge(
    "migrations_pending",
    "Migrations not applied after the last scripts/migrate.py run",
    registry=MIGRATION_REGISTRY,
)


def push(gateway_url: str, job: str, registry: CollectorRegistry = REGISTRY) -> None:
    """Push every metric of ``registry`` to a Pushgateway (batch runs have no long-lived
    /metrics to scrape)."""
    push_to_gateway(gateway_url, job=job, registry=registry, timeout=10)


# The catalogue's size (issue 14), read from PostgreSQL at scrape time by the enrichment service.
CATALOGUE_GAUGES = {
    "catalogue_tracks": "Tracks in the catalogue",
    "catalogue_tracks_with_isrc": "Tracks with an ISRC",
    "catalogue_tracks_with_spotify_id": "Tracks with a Spotify ID",
    "catalogue_tracks_pending_enrichment": "Tracks without an ISRC never tried by enrichment",
    "catalogue_setlists": "Setlists in the catalogue",
}


class CatalogueCollector(Collector):
    """The ``CATALOGUE_GAUGES``, counted by a reader at most once per ``ttl`` seconds.

    Counting scans the tracks table, so a scrape reuses the last counts while they are fresh,
    and concurrent scrapes share one count. When a count fails (database down, too slow), the
    last counts are served and a warning logged; before any count succeeds, nothing is served.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reader: Callable[[], Mapping[str, int]] | None = None
        self._errors: tuple[type[Exception], ...] = ()
        self._ttl = 0.0
        self._values: Mapping[str, int] = {}
        self._read_at = float("-inf")

    def watch(
        self,
        reader: Callable[[], Mapping[str, int]],
        ttl: float,
        errors: tuple[type[Exception], ...],
    ) -> None:
        """Count with ``reader`` from now on (forgetting earlier counts); it raises ``errors``."""
        with self._lock:
            self._reader, self._ttl, self._errors = reader, ttl, errors
            self._values, self._read_at = {}, float("-inf")

    def describe(self) -> Iterator[GaugeMetricFamily]:
        for name, documentation in CATALOGUE_GAUGES.items():
            yield GaugeMetricFamily(name, documentation)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        values = self._current()
        for name, documentation in CATALOGUE_GAUGES.items():
            if name in values:
                yield GaugeMetricFamily(name, documentation, value=values[name])

    def _current(self) -> Mapping[str, int]:
        with self._lock:
            if self._reader is not None and time.monotonic() - self._read_at >= self._ttl:
                try:
                    self._values = self._reader()
                    self._read_at = time.monotonic()
                except self._errors as error:  # a scrape must answer; the counts are only stale
                    logger.warning("Catalogue counts unavailable, serving the last ones: %s", error)
            return self._values


CATALOGUE = CatalogueCollector()
REGISTRY.register(CATALOGUE)
