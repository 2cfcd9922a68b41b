"""The batch writer: the one engine that stores items in the catalogue.

The database pipeline, the bulk importer and replayed spool files all hand their items here.
A batch is resolved set-based, in one transaction and about fifteen statements whatever its
size:

1. every item is validated (``records``); refused items go to ``rejected_items``;
2. advisory locks are taken on every key the batch resolves (``locks``), so two writers never
   create the same track, artist or setlist;
3. one query fetches every track the batch could match (by ISRC, Spotify ID, known spelling in
   ``track_lookup``, or title key), and the tiers run in memory over that small set: ISRC, then
   Spotify ID, then the Koito lookup of raw spellings, then the title key, else a new track.
   Items of the same batch resolve against each other too, which is the in-batch dedupe;
4. new tracks are COPYed, updates are COPYed into a temp table and applied with one UPDATE,
   then artists, credits, the lookup cache, setlists and their rows follow, parents first.

Identifier conflicts follow ``conflicts``' policy and never raise. A batch that hits a data
error PostgreSQL refuses is split in halves until the one offending item is found and rejected
with the database's message, so the rest is stored. Losing the connection is retried with
backoff until ``retry_timeout`` (or until a caller shutting down says ``give_up``); re-applying a
batch is idempotent because every step resolves before it inserts.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import random
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

import psycopg2
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extras import execute_values

from scrapers import identity, metrics
from scrapers.db import records
from scrapers.db.conflicts import Conflict, count_conflicts, decide, insert_conflicts
from scrapers.db.connection import connect, redacted
from scrapers.db.garbage import collect_rarely
from scrapers.db.locks import lock_key, lock_keys
from scrapers.db.records import Placement, Rejected, SetlistRecord, TrackRecord

logger = logging.getLogger(__name__)

# Errors after which the same batch may succeed on a new connection or a new attempt.
TRANSIENT_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)
# Errors caused by some item's data: split the batch to find and reject that item.
DATA_ERRORS = (psycopg2.DataError, psycopg2.IntegrityError)

# The writer's statements are many short index lookups. The planner cannot know that each
# LATERAL lookup finds a row or two, and its estimate (millions of rows) crosses
# ``jit_above_cost``: compiling the query then took 0.5 s of a 0.57 s candidate fetch.
_SESSION_SETUP = """
SET jit = off;
CREATE TEMP TABLE IF NOT EXISTS writer_track_updates (
    id uuid, bpm numeric, duration_ms integer, key text, label text, release_date date,
    genre text, musicbrainz_id uuid, version text, isrc text, spotify_id text, title_key text,
    metadata jsonb, enrichment_status text
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS writer_credits (
    track_id uuid, artist_id uuid, role text, position smallint
) ON COMMIT DELETE ROWS;
"""
_NEW_TRACK_COLUMNS = (
    "id",
    "title",
    "normalized_title",
    "title_key",
    "isrc",
    "spotify_id",
    "is_remix",
    *records.OVERWRITE_COLUMNS,
    *records.FILL_ONLY_COLUMNS,
    "metadata",
    "enrichment_status",
)
_UPDATE_COLUMNS = (
    "id",
    *records.OVERWRITE_COLUMNS,
    *records.FILL_ONLY_COLUMNS,
    "isrc",
    "spotify_id",
    "title_key",
    "metadata",
    "enrichment_status",
)
_CREDIT_COLUMNS = ("track_id", "artist_id", "role", "position")
_ROW_COLUMNS = (
    "setlist_id",
    "row_index",
    "position",
    "played_with_previous",
    "is_mashup",
    "mashup_parent_row",
    "cue_seconds",
    "track_id",
    "raw_artist",
    "raw_title",
    "label",
    "site_track_id",
    "is_unknown",
    "is_partial_id",
)


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached within the retry timeout; nothing of the batch is
    known to be stored, and writing it again later is safe."""


class RowChange(StrEnum):
    """How a stored setlist row followed its page (the ``change`` label)."""

    ADDED = "added"
    UPDATED = "updated"
    REMOVED = "removed"


for _change in RowChange:  # exported at 0 from the start, so rates see the series at once
    metrics.SETLIST_ROWS_CHANGED.labels(_change)


@dataclass
class BatchResult:
    """What one ``write`` stored. Counts are per item, not per distinct track."""

    items: int = 0
    inserted: int = 0
    updated: int = 0
    setlists: int = 0
    setlist_rows: int = 0
    # Stored setlist rows that changed (a new or refreshed page).
    row_changes: Counter[RowChange] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    tiers: Counter[str] = field(default_factory=Counter)
    # (tier, "inserted" | "updated"): the import summary's per-tier split.
    tier_outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    conflicts: int = 0
    invalid_identifiers: int = 0

    def add(self, other: BatchResult) -> None:
        for name in ("items", "inserted", "updated", "setlists", "setlist_rows", "conflicts"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.invalid_identifiers += other.invalid_identifiers
        self.rejected.update(other.rejected)
        self.row_changes.update(other.row_changes)
        self.tiers.update(other.tiers)
        self.tier_outcomes.update(other.tier_outcomes)

    @property
    def stored(self) -> int:
        return self.items - sum(self.rejected.values())


class _Entry(NamedTuple):
    """A validated item with where it came from, kept for a rejection after a split."""

    record: records.Record
    location: str | None
    item: Any


@dataclass
class _Rejection:
    location: str | None
    code: str
    reason: str
    payload: records.Payload


@dataclass
class _Track:
    """A track as the batch sees it: fetched from the database or created by the batch."""

    id: str
    isrc: str | None
    spotify_id: str | None
    title_key: str | None
    is_new: bool = False
    source: TrackRecord | None = None  # the item that created it (new) or filled its key
    values: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    enrichment_status: str | None = None
    changed: bool = False

    def contradicts(self, record: TrackRecord) -> bool:
        """A different recording: it holds another ISRC or Spotify ID than the item."""
        return bool(
            (record.isrc and self.isrc and record.isrc != self.isrc)
            or (record.spotify_id and self.spotify_id and record.spotify_id != self.spotify_id)
        )

    def absorb(self, record: TrackRecord) -> None:
        """The merge rule within a batch: later non-null values win, identity fills once."""
        for name in records.OVERWRITE_COLUMNS:
            if record.values.get(name) is not None:
                self.values[name] = record.values[name]
                self.changed = True
        for name in records.FILL_ONLY_COLUMNS:
            if self.values.get(name) is None and record.values.get(name) is not None:
                self.values[name] = record.values[name]
                self.changed = True
        if record.metadata:
            self.metadata.update(record.metadata)
            self.changed = True
        if record.enrichment_status and record.enrichment_status != "pending":
            self.enrichment_status = record.enrichment_status
            self.changed = True


class _Resolution:
    """The tiers, run in memory over the candidates fetched for one batch."""

    def __init__(self) -> None:
        self.by_isrc: dict[str, _Track] = {}
        self.by_spotify: dict[str, _Track] = {}
        self.by_spelling: dict[tuple[str, str], _Track] = {}
        self.by_title_key: dict[str, list[_Track]] = {}
        self.tracks: dict[str, _Track] = {}
        self.new_spellings: dict[tuple[str, str], str] = {}
        self.conflicts: list[Conflict] = []

    def add(self, track: _Track) -> _Track:
        track = self.tracks.setdefault(track.id, track)
        if track.isrc:
            self.by_isrc.setdefault(track.isrc, track)
        if track.spotify_id:
            self.by_spotify.setdefault(track.spotify_id, track)
        if track.title_key:
            self.by_title_key.setdefault(track.title_key, []).append(track)
        return track

    def resolve(self, record: TrackRecord) -> tuple[_Track, bool]:
        """The track ``record`` belongs to, and whether the batch created it."""
        track = self._match(record)
        created = track is None
        if track is None:
            track = self.add(_Track(new_id(), None, None, record.title_key, True, record))
        elif track.title_key is None:
            # A row from before title keys (hand inserts, old scrapers): give it one and its
            # credits, so the title tier can find it from now on.
            track.title_key, track.source, track.changed = record.title_key, record, True
            self.by_title_key.setdefault(record.title_key, []).append(track)
        for name, index in (("isrc", self.by_isrc), ("spotify_id", self.by_spotify)):
            incoming = getattr(record, name)
            owner = index.get(incoming) if incoming else None
            gains, conflict = decide(
                name, track.id, incoming, getattr(track, name), owner.id if owner else None
            )
            if gains:
                setattr(track, name, incoming)
                index[incoming] = track
                track.changed = True
            if conflict:
                self.conflicts.append(conflict)
        track.absorb(record)
        spelling = (record.artist, record.title)
        if spelling not in self.by_spelling:
            # The first track a spelling resolved to keeps it, as in track_lookup.
            self.by_spelling[spelling] = track
            self.new_spellings[spelling] = track.id
        return track, created

    def _match(self, record: TrackRecord) -> _Track | None:
        if record.isrc and record.isrc in self.by_isrc:
            return self.by_isrc[record.isrc]
        by_spotify = self.by_spotify.get(record.spotify_id) if record.spotify_id else None
        if by_spotify and not by_spotify.contradicts(record):
            return by_spotify
        by_spelling = self.by_spelling.get((record.artist, record.title))
        if by_spelling and not by_spelling.contradicts(record):
            return by_spelling
        for candidate in self.by_title_key.get(record.title_key, ()):
            if not candidate.contradicts(record):
                return candidate
        return None


# The random part of new ids. ``os.urandom`` per id is a system call that releases the GIL;
# winning it back from a busy thread (the importer reading the next batch) made an id cost
# 17 us in an import instead of 3, and up to 0.45 ms. Seeded from the system's entropy, and
# again in a forked child, so that two processes never draw the same sequence.
_id_bits = random.Random()
os.register_at_fork(after_in_child=_id_bits.seed)


def new_id() -> str:
    """A UUID in RFC 9562's version 7 layout: milliseconds since 1970, then random bits.

    Ids created together sort together, so the primary-key and foreign-key indexes on them grow
    at their right edge instead of touching a random page of a large index for every row.
    """
    value = (time.time_ns() // 1_000_000) << 80 | _id_bits.getrandbits(80)
    # Version 7 in bits 76-79, variant 0b10 in bits 62-63.
    value = value & ~(0xF << 76) | 0x7 << 76
    value = value & ~(0x3 << 62) | 0x2 << 62
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


Validated = tuple[list[tuple[int, records.Record]], list[_Rejection]]


def validate(items: Sequence[Any], locations: Sequence[str | None] | None) -> Validated:
    """Every item's record with its index in ``items``, and the refusals with their reasons.

    A module-level function of plain data, so that ``validation_pool`` can run it in another
    process; only the records travel back, the items stay with the caller.
    """
    valid: list[tuple[int, records.Record]] = []
    rejections: list[_Rejection] = []
    for index, item in enumerate(items):
        try:
            valid.append((index, records.to_record(item)))
        except Rejected as error:
            location = locations[index] if locations else None
            rejections.append(_Rejection(location, error.code, str(error), _payload(item)))
    return valid, rejections


def _payload(item: Any) -> records.Payload:
    return records.Payload.of(records.payload_text(item))


def validation_pool() -> ProcessPoolExecutor:
    """One process that validates batches while this one reads and writes (bulk loads).

    Validation is about a third of an import's Python time, and one process holds one core's
    worth of Python. The worker ignores Ctrl-C and SIGTERM: the importer decides when to stop,
    and batches already handed over must still be validated to be committed. It exits when its
    parent does, however that ends (a killed importer would otherwise leave it waiting).
    The caller's main module must be importable without side effects (multiprocessing's
    "spawn": ``if __name__ == "__main__":``), as ``scripts/import_tracks.py`` is.
    """
    return ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_validation_worker,
    )


def _start_validation_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    collect_rarely()
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(parent_sentinel: int) -> None:
    """Wait for the parent process to end, then end this one at once."""
    multiprocessing.connection.wait([parent_sentinel])
    os._exit(1)


def _entries(
    validated: Validated, items: Sequence[Any], locations: Sequence[str | None] | None
) -> tuple[list[_Entry], list[_Rejection]]:
    valid, rejections = validated
    entries = [
        _Entry(record, locations[index] if locations else None, items[index])
        for index, record in valid
    ]
    return entries, rejections


class BatchWriter:
    """Writes batches of items, in the order given, on one connection.

    ``origin`` names the producer in ``rejected_items`` and ``identifier_conflicts``
    ("spider:1001tracklists", "import:export.jsonl"). ``retry_timeout`` bounds how long a batch
    waits for a lost database before ``DatabaseUnavailable``.

    ``write`` stores one batch and returns its result. ``submit`` is for bulk loads: it
    validates the batch in the caller's thread, or in ``validation_pool`` when given, and hands
    it to the writer's own thread, so the next batch is prepared while this one is in
    PostgreSQL; at most one batch waits behind the one being written, so memory stays bounded.
    Use one ``BatchWriter`` from one thread.
    """

    def __init__(
        self,
        url: str,
        *,
        origin: str,
        retry_timeout: float = 60.0,
        validation_pool: Executor | None = None,
    ) -> None:
        self.url = url
        self.origin = origin
        self.retry_timeout = retry_timeout
        self.validation_pool = validation_pool
        self._connection: psycopg2.extensions.connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight: deque[Future[BatchResult]] = deque()
        self._give_up = threading.Event()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Wait for submitted batches, then release the thread and the connection."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._in_flight.clear()
        self._drop_connection()

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with suppress(psycopg2.Error):
                self._connection.close()
            self._connection = None

    def write(
        self, items: Sequence[Any], locations: Sequence[str | None] | None = None
    ) -> BatchResult:
        """Store ``items`` in order; ``locations`` (same length) say where each came from.

        Runs in the caller's thread, after any batch submitted before: a caller that must be
        able to walk away from a write stuck in the network (the crawl's pipeline, at shutdown)
        runs it in a thread of its own choosing.
        """
        started = time.monotonic()
        while self._in_flight:
            self._in_flight.popleft().exception()  # wait; errors stay with their future
        validated: Future[Validated] = Future()
        validated.set_result(validate(items, locations))
        return self._store(validated, items, locations, started)

    def give_up(self) -> None:
        """From now on make one attempt per batch: a write retrying a lost database stops at
        once with ``DatabaseUnavailable``. Thread-safe; for a caller that is shutting down."""
        self._give_up.set()

    def ping(self) -> bool:
        """Whether the database answers now (one attempt, no retries)."""
        try:
            connection = self._connect()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            connection.rollback()
        except TRANSIENT_ERRORS:
            self._drop_connection()
            return False
        return True

    def submit(
        self, items: Sequence[Any], locations: Sequence[str | None] | None = None
    ) -> Future[BatchResult]:
        """Validate ``items`` and store them after every batch submitted before."""
        started = time.monotonic()
        validated: Future[Validated]
        if self.validation_pool is None:
            validated = Future()
            validated.set_result(validate(items, locations))
        else:
            validated = self.validation_pool.submit(validate, items, locations)
        while len(self._in_flight) > 1 or (self._in_flight and self._in_flight[0].done()):
            self._in_flight.popleft().exception()  # wait; errors stay with their future
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-writer")
        future = self._executor.submit(self._store, validated, items, locations, started)
        self._in_flight.append(future)
        return future

    def _store(
        self,
        validated: Future[Validated],
        items: Sequence[Any],
        locations: Sequence[str | None] | None,
        started: float,
    ) -> BatchResult:
        prepared, rejections = _entries(validated.result(), items, locations)
        result = self._write_with_retries(prepared, rejections)
        result.items = len(items)
        result.invalid_identifiers = sum(
            len(entry.record.invalid_identifiers)
            for entry in prepared
            if isinstance(entry.record, TrackRecord)
        )
        duration = time.monotonic() - started
        metrics.BATCH_FLUSH_SECONDS.observe(duration)
        logger.info(
            "Stored batch of %d items from %s in %.2fs: %d inserted, %d updated, %d rejected,"
            " %d identifier conflicts, %d setlists, %d setlist rows",
            result.items,
            self.origin,
            duration,
            result.inserted,
            result.updated,
            sum(result.rejected.values()),
            result.conflicts,
            result.setlists,
            result.setlist_rows,
        )
        return result

    def _write_with_retries(
        self, prepared: list[_Entry], rejections: list[_Rejection]
    ) -> BatchResult:
        deadline = time.monotonic() + self.retry_timeout
        delay = 0.2
        while True:
            try:
                return self._write_splitting(prepared, rejections)
            except TRANSIENT_ERRORS as error:
                self._drop_connection()
                out_of_time = time.monotonic() + delay > deadline or self._give_up.is_set()
                if not out_of_time:
                    logger.warning("Database write failed (%s); retrying in %.1fs", error, delay)
                # ``give_up`` ends the wait at once.
                if out_of_time or self._give_up.wait(delay):
                    raise DatabaseUnavailable(
                        f"cannot write to {redacted(self.url)}: {error}".strip()
                    ) from error
                delay = min(delay * 2, 5.0)

    def _write_splitting(self, prepared: list[_Entry], rejections: list[_Rejection]) -> BatchResult:
        """One transaction; on a data error, halves in order until the bad item is alone."""
        try:
            return self._transaction(prepared, rejections)
        except DATA_ERRORS as error:
            if len(prepared) <= 1:
                if not prepared:
                    raise
                entry = prepared[0]
                message = error.diag.message_primary or str(error).strip()
                reason = f"database_error: {error.pgcode} {message[:500]}"
                logger.warning("Rejected item the database refused: %s", reason)
                rejection = _Rejection(
                    entry.location, "database_error", reason, _payload(entry.item)
                )
                return self._transaction([], [*rejections, rejection])
            middle = len(prepared) // 2
            result = self._write_splitting(prepared[:middle], rejections)
            result.add(self._write_splitting(prepared[middle:], []))
            return result

    def _transaction(self, prepared: list[_Entry], rejections: list[_Rejection]) -> BatchResult:
        connection = self._connect()
        batch = [entry.record for entry in prepared]
        try:
            with connection.cursor() as cursor:
                result, applied = _apply(cursor, batch, rejections, self.origin)
            connection.commit()
        except BaseException:
            # A lost connection cannot roll back; the server has already discarded the work.
            with suppress(psycopg2.Error):
                connection.rollback()
            raise
        # Counted only once stored: a rolled-back attempt must not count twice.
        _count(result, batch, rejections, applied)
        return result

    def _connect(self) -> psycopg2.extensions.connection:
        if self._connection is None or self._connection.closed:
            connection = connect(self.url)
            with connection.cursor() as cursor:
                cursor.execute(_SESSION_SETUP)
            connection.commit()
            self._connection = connection
        return self._connection


@dataclass
class _Applied:
    """What a transaction did that is reported only after it commits."""

    isrc_upserts: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)


def _count(
    result: BatchResult,
    prepared: list[records.Record],
    rejections: list[_Rejection],
    applied: _Applied,
) -> None:
    metrics.TRACKS_UPSERT_ISRC.inc(result.tiers["isrc"])
    metrics.TRACKS_UPSERT_SPOTIFY.inc(result.tiers["spotify"])
    metrics.TRACKS_UPSERT_TITLE.inc(result.tiers["title"])
    metrics.TRACKS_WRITTEN.labels("inserted").inc(result.inserted)
    metrics.TRACKS_WRITTEN.labels("updated").inc(result.updated)
    for change, count in result.row_changes.items():
        metrics.SETLIST_ROWS_CHANGED.labels(change).inc(count)
    for rejection in rejections:
        metrics.ITEMS_REJECTED.labels(rejection.code).inc()
    for record in prepared:
        if isinstance(record, TrackRecord):
            for name in record.invalid_identifiers:
                metrics.INVALID_IDENTIFIERS.labels(name).inc()
    count_conflicts(applied.conflicts)
    if logger.isEnabledFor(logging.DEBUG):
        for isrc in applied.isrc_upserts:
            logger.debug("Upserted track via ISRC: %s", isrc)


def _apply(
    cursor: psycopg2.extensions.cursor,
    prepared: list[records.Record],
    rejections: list[_Rejection],
    origin: str,
) -> tuple[BatchResult, _Applied]:
    """Every statement of one batch, parents before children."""
    result = BatchResult()
    applied = _Applied()
    setlists = _merged_setlists(r for r in prepared if isinstance(r, SetlistRecord))
    rows = [r for r in prepared if isinstance(r, TrackRecord)]
    tracks = [r for r in rows if r.is_track]

    lock_keys(cursor, _lock_keys_for(setlists, rows))
    resolution = _Resolution()
    _fetch_candidates(cursor, tracks, resolution)

    placements: dict[tuple[tuple[str, str], int], tuple[Placement, str | None]] = {}
    for record in rows:
        track_id = None
        if record.is_track:
            track, created = resolution.resolve(record)
            track_id = track.id
            result.tiers[record.tier] += 1
            result.tier_outcomes[(record.tier, "inserted" if created else "updated")] += 1
            if created:
                result.inserted += 1
            else:
                result.updated += 1
            if record.isrc:
                applied.isrc_upserts.append(record.isrc)
        if record.placement is not None:
            placements[(record.placement.setlist_key, record.placement.row_index)] = (
                record.placement,
                track_id,
            )

    setlist_ids = _write_setlists(cursor, setlists, {key for key, _ in placements})
    result.setlists = len(setlists)
    _write_tracks(cursor, resolution)
    _write_lookup(cursor, resolution.new_spellings)
    result.row_changes = _write_setlist_rows(cursor, placements, setlist_ids)
    result.row_changes[RowChange.REMOVED] = _remove_rows_past_the_end(cursor, setlists, setlist_ids)
    result.setlist_rows = len(placements)
    applied.conflicts = insert_conflicts(cursor, resolution.conflicts, origin)
    result.conflicts = len(applied.conflicts)
    if rejections:
        # A replayed batch does not list the same refusal twice.
        unique = list(
            dict.fromkeys(
                (origin, r.location, r.reason, r.payload.text, r.payload.size, r.payload.sha256)
                for r in rejections
            )
        )
        execute_values(
            cursor,
            """
            INSERT INTO rejected_items
                (origin, location, reason, payload, payload_bytes, payload_sha256)
            SELECT v.origin, v.location, v.reason, v.payload, v.payload_bytes, v.payload_sha256
            FROM (VALUES %s) AS v (n, origin, location, reason, payload, payload_bytes,
                                   payload_sha256)
            WHERE NOT EXISTS (
                SELECT 1 FROM rejected_items r
                WHERE r.reason = v.reason AND r.origin = v.origin
                  AND r.location IS NOT DISTINCT FROM v.location
                  AND r.payload_sha256 = v.payload_sha256)
            ORDER BY v.n
            """,
            [(n, *row) for n, row in enumerate(unique)],
            template="(%s, %s, %s::text, %s, %s, %s::bigint, %s)",
            page_size=len(unique),
        )
        result.rejected.update(r.code for r in rejections)
    return result, applied


def _lock_keys_for(setlists: Iterable[SetlistRecord], rows: Iterable[TrackRecord]) -> Iterator[str]:
    """Lazily, with repeats: ``lock_keys`` stops reading once every bucket is taken, which a
    batch of a few thousand items reaches about halfway through."""
    for setlist in setlists:
        yield lock_key("setlist", f"{setlist.source}/{setlist.source_id}")
    for record in rows:
        if record.placement is not None:
            source, source_id = record.placement.setlist_key
            yield lock_key("setlist", f"{source}/{source_id}")
        if not record.is_track:
            continue
        yield lock_key("title", record.title_key)
        if record.isrc:
            yield lock_key("isrc", record.isrc)
        if record.spotify_id:
            yield lock_key("spotify_id", record.spotify_id)
        for name, _ in record.credits:
            yield lock_key("artist", identity.artist_key(name))


def _fetch_candidates(
    cursor: psycopg2.extensions.cursor, tracks: list[TrackRecord], resolution: _Resolution
) -> None:
    """Every stored track any item of the batch could match, in one round trip."""
    if not tracks:
        return
    isrcs = sorted({r.isrc for r in tracks if r.isrc})
    spotify_ids = sorted({r.spotify_id for r in tracks if r.spotify_id})
    title_keys = sorted({r.title_key for r in tracks})
    spellings = sorted({(r.artist, r.title) for r in tracks})
    cursor.execute(
        """
        WITH spelling AS MATERIALIZED (
            -- LATERAL … LIMIT keeps these per-key index lookups: a join here would let the
            -- planner hash the whole table, a cost that grows with the catalogue.
            SELECT s.artist AS raw_artist, s.title AS raw_title, l.track_id
            FROM unnest(%(artists)s::text[], %(titles)s::text[]) AS s (artist, title)
            CROSS JOIN LATERAL (
                SELECT track_id FROM track_lookup
                WHERE raw_artist = s.artist AND raw_title = s.title LIMIT 1
            ) AS l
        ), candidate AS (
            SELECT id FROM tracks WHERE isrc = ANY(%(isrcs)s::text[])
            UNION SELECT id FROM tracks WHERE spotify_id = ANY(%(spotify_ids)s::text[])
            UNION SELECT k.id FROM unnest(%(title_keys)s::text[]) AS key (title_key)
                  CROSS JOIN LATERAL (
                      SELECT id FROM tracks WHERE title_key = key.title_key LIMIT 1000
                  ) AS k
            UNION SELECT track_id FROM spelling
        )
        SELECT t.id::text, t.isrc, t.spotify_id, t.title_key, NULL, NULL, t.created_at
        FROM candidate c CROSS JOIN LATERAL (
            SELECT * FROM tracks WHERE tracks.id = c.id LIMIT 1
        ) AS t
        UNION ALL
        SELECT track_id::text, NULL, NULL, NULL, raw_artist, raw_title, NULL FROM spelling
        ORDER BY 5 NULLS FIRST, 7, 1
        """,
        {
            "artists": [a for a, _ in spellings],
            "titles": [t for _, t in spellings],
            "isrcs": isrcs,
            "spotify_ids": spotify_ids,
            "title_keys": title_keys,
        },
    )
    # Oldest first: the title tier adopts the oldest track that does not contradict the item.
    for track_id, isrc, spotify_id, title_key, raw_artist, raw_title, _ in cursor.fetchall():
        if raw_artist is None:
            resolution.add(_Track(track_id, isrc, spotify_id, title_key))
        elif track_id in resolution.tracks:
            resolution.by_spelling[(raw_artist, raw_title)] = resolution.tracks[track_id]


def _merged_setlists(setlists: Iterable[SetlistRecord]) -> list[SetlistRecord]:
    merged: dict[tuple[str, str], SetlistRecord] = {}
    for setlist in setlists:
        previous = merged.get(setlist.key)
        if previous is not None:
            for name, value in vars(setlist).items():
                if value in (None, []):
                    setattr(setlist, name, getattr(previous, name))
        merged[setlist.key] = setlist
    return [merged[key] for key in sorted(merged)]


def _write_setlists(
    cursor: psycopg2.extensions.cursor,
    setlists: list[SetlistRecord],
    referenced: set[tuple[str, str]],
) -> dict[tuple[str, str], str]:
    """Upsert the batch's setlists (and a bare row for any setlist a track row names that was
    never seen, so that no row is dropped); returns their ids.

    A setlist with a content hash is a whole page read: it is marked checked now. Its other
    columns, and ``updated_at``, change only when the page says something new.
    """
    rows = [
        (
            s.source,
            s.source_id,
            s.url,
            s.title,
            s.djs,
            s.event,
            s.set_date,
            s.genres,
            s.stated_track_count,
            s.content_hash,
            s.row_count,
        )
        for s in setlists
    ]
    known = {s.key for s in setlists}
    rows += [
        (*key, None, None, [], None, None, [], None, None, None)
        for key in sorted(referenced - known)
    ]
    if not rows:
        return {}
    returned = execute_values(
        cursor,
        """
        INSERT INTO setlists AS s (source, source_id, url, title, djs, event, set_date, genres,
                                   stated_track_count, content_hash, row_count, checked_at)
        SELECT v.*, CASE WHEN v.content_hash IS NULL THEN NULL ELSE now() END
        FROM (VALUES %s) AS v (source, source_id, url, title, djs, event, set_date, genres,
                               stated_track_count, content_hash, row_count)
        ON CONFLICT (source, source_id) DO UPDATE SET
            url = coalesce(EXCLUDED.url, s.url),
            title = coalesce(EXCLUDED.title, s.title),
            djs = CASE WHEN cardinality(EXCLUDED.djs) > 0 THEN EXCLUDED.djs ELSE s.djs END,
            event = coalesce(EXCLUDED.event, s.event),
            set_date = coalesce(EXCLUDED.set_date, s.set_date),
            genres = CASE WHEN cardinality(EXCLUDED.genres) > 0
                          THEN EXCLUDED.genres ELSE s.genres END,
            stated_track_count = coalesce(EXCLUDED.stated_track_count, s.stated_track_count),
            content_hash = coalesce(EXCLUDED.content_hash, s.content_hash),
            row_count = coalesce(EXCLUDED.row_count, s.row_count),
            checked_at = coalesce(EXCLUDED.checked_at, s.checked_at),
            updated_at = CASE
                WHEN (coalesce(EXCLUDED.url, s.url), coalesce(EXCLUDED.title, s.title),
                      coalesce(EXCLUDED.event, s.event),
                      coalesce(EXCLUDED.set_date, s.set_date),
                      coalesce(EXCLUDED.stated_track_count, s.stated_track_count),
                      coalesce(EXCLUDED.content_hash, s.content_hash))
                     IS DISTINCT FROM
                     (s.url, s.title, s.event, s.set_date, s.stated_track_count, s.content_hash)
                     OR (cardinality(EXCLUDED.djs) > 0 AND EXCLUDED.djs <> s.djs)
                     OR (cardinality(EXCLUDED.genres) > 0 AND EXCLUDED.genres <> s.genres)
                THEN now() ELSE s.updated_at END
        RETURNING source, source_id, id::text
        """,
        rows,
        template="(%s, %s, %s, %s, %s::text[], %s, %s::date, %s::text[], %s::integer, %s,"
        " %s::integer)",
        page_size=len(rows),
        fetch=True,
    )
    return {(source, source_id): setlist_id for source, source_id, setlist_id in returned}


def _write_tracks(cursor: psycopg2.extensions.cursor, resolution: _Resolution) -> None:
    new_rows, updates, names, credits = [], [], {}, []
    for track in resolution.tracks.values():
        if track.is_new:
            record = track.source
            assert record is not None
            new_rows.append(
                (
                    track.id,
                    record.title,
                    record.normalized_title,
                    track.title_key,
                    track.isrc,
                    track.spotify_id,
                    record.is_remix,
                    *(track.values.get(c) for c in records.OVERWRITE_COLUMNS),
                    *(track.values.get(c) for c in records.FILL_ONLY_COLUMNS),
                    json.dumps(track.metadata) if track.metadata else "{}",
                    track.enrichment_status or "pending",
                )
            )
        elif track.changed:
            updates.append(
                (
                    track.id,
                    *(track.values.get(c) for c in records.OVERWRITE_COLUMNS),
                    *(track.values.get(c) for c in records.FILL_ONLY_COLUMNS),
                    track.isrc,
                    track.spotify_id,
                    track.title_key,
                    json.dumps(track.metadata),
                    track.enrichment_status,
                )
            )
        if track.source is not None:
            positions: Counter[str] = Counter()
            for name, role in track.source.credits:
                key = identity.artist_key(name)
                names.setdefault(key, name)
                credits.append((track.id, key, role, positions[role]))
                positions[role] += 1
    copy_rows(cursor, "tracks", _NEW_TRACK_COLUMNS, new_rows)
    if updates:
        copy_rows(cursor, "writer_track_updates", _UPDATE_COLUMNS, updates)
        cursor.execute(
            sql.SQL(
                "UPDATE tracks AS t SET {} FROM writer_track_updates AS u WHERE t.id = u.id"
            ).format(records.update_assignments())
        )
    if names:
        _write_credits(
            cursor, names, credits, {t.id for t in resolution.tracks.values() if t.is_new}
        )


def _write_credits(
    cursor: psycopg2.extensions.cursor,
    names: Mapping[str, str],
    credits: list[tuple[str, str, str, int]],
    new_track_ids: set[str],
) -> None:
    """Artists, then their roles. The batch holds the artists' locks, so an artist missing now
    stays missing until commit: plain COPY, no ON CONFLICT round of speculative inserts."""
    cursor.execute(
        "SELECT normalized_name, id::text FROM artists WHERE normalized_name = ANY(%s)",
        (sorted(names),),
    )
    artist_ids = dict(cursor.fetchall())
    missing = [(new_id(), key, names[key]) for key in sorted(names) if key not in artist_ids]
    copy_rows(cursor, "artists", ("id", "normalized_name", "name"), missing)
    artist_ids.update((key, artist_id) for artist_id, key, _ in missing)
    rows = [
        (track_id, artist_ids[key], role, position) for track_id, key, role, position in credits
    ]
    # A new track has no credits yet; a pre-existing one given a title key may have some.
    copy_rows(cursor, "track_artists", _CREDIT_COLUMNS, [r for r in rows if r[0] in new_track_ids])
    existing = [r for r in rows if r[0] not in new_track_ids]
    if existing:
        copy_rows(cursor, "writer_credits", _CREDIT_COLUMNS, existing)
        cursor.execute(
            "INSERT INTO track_artists (track_id, artist_id, role, position)"
            " SELECT track_id, artist_id, role, position FROM writer_credits"
            " ON CONFLICT DO NOTHING"
        )


def _write_lookup(
    cursor: psycopg2.extensions.cursor, spellings: Mapping[tuple[str, str], str]
) -> None:
    """Remember each raw spelling seen for the first time (the batch fetched every stored
    spelling it uses, under the title-key locks, so these cannot exist yet)."""
    copy_rows(
        cursor,
        "track_lookup",
        ("raw_artist", "raw_title", "track_id"),
        [(artist, title, track_id) for (artist, title), track_id in spellings.items()],
    )


def _write_setlist_rows(
    cursor: psycopg2.extensions.cursor,
    placements: Mapping[tuple[tuple[str, str], int], tuple[Placement, str | None]],
    setlist_ids: Mapping[tuple[str, str], str],
) -> Counter[RowChange]:
    """Upsert the rows; a row already stored as it is now is not written. Returns how many
    rows were added and updated (a refreshed page: an "ID" now known, positions, cues)."""
    changes: Counter[RowChange] = Counter()
    if not placements:
        return changes
    rows = [
        (
            setlist_ids[p.setlist_key],
            p.row_index,
            p.position,
            p.played_with_previous,
            p.is_mashup,
            p.mashup_parent_row,
            p.cue_seconds,
            track_id,
            p.raw_artist,
            p.raw_title,
            p.label,
            p.site_track_id,
            p.is_unknown,
            p.is_partial_id,
        )
        for p, track_id in placements.values()
    ]
    columns = [sql.Identifier(c) for c in _ROW_COLUMNS[2:]]
    updates = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(c) for c in columns)
    stored = sql.SQL(", ").join(sql.SQL("setlist_tracks.{}").format(c) for c in columns)
    incoming = sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(c) for c in columns)
    written = execute_values(
        cursor,
        sql.SQL(
            "INSERT INTO setlist_tracks ({}) VALUES %s"
            " ON CONFLICT (setlist_id, row_index) DO UPDATE SET {}"
            " WHERE ({}) IS DISTINCT FROM ({})"
            " RETURNING xmax = 0"
        ).format(sql.SQL(", ").join(map(sql.Identifier, _ROW_COLUMNS)), updates, stored, incoming),
        sorted(rows),
        page_size=len(rows),
        fetch=True,
    )
    for (inserted,) in written:
        changes[RowChange.ADDED if inserted else RowChange.UPDATED] += 1
    return changes


def _remove_rows_past_the_end(
    cursor: psycopg2.extensions.cursor,
    setlists: list[SetlistRecord],
    setlist_ids: Mapping[tuple[str, str], str],
) -> int:
    """Rows the site no longer shows: a page of N rows keeps rows 0..N-1 (tracks stay)."""
    ends = [(setlist_ids[s.key], s.row_count) for s in setlists if s.row_count is not None]
    if not ends:
        return 0
    cursor.execute(
        """
        DELETE FROM setlist_tracks t
        USING unnest(%s::uuid[], %s::integer[]) AS e (setlist_id, row_count)
        WHERE t.setlist_id = e.setlist_id AND t.row_index >= e.row_count
        """,
        ([setlist_id for setlist_id, _ in ends], [count for _, count in ends]),
    )
    return cursor.rowcount


def copy_rows(
    cursor: psycopg2.extensions.cursor,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """COPY ``rows`` into ``table`` in PostgreSQL's text format (the fastest bulk path)."""
    # Plain text needs no escaping and, with NULL, is by far the common value: test both
    # inline, without a function call per value, which is most of the cost of building the text.
    lines = [
        "\t".join(
            [
                "\\N"
                if value is None
                else value
                if type(value) is str
                and "\\" not in value
                and "\t" not in value
                and "\n" not in value
                and "\r" not in value
                else _copy_text(value)
                for value in row
            ]
        )
        for row in rows
    ]
    if not lines:
        return
    lines.append("")
    text = "\n".join(lines)
    # One read of the whole text: psycopg2 reads ``size`` characters at a time and needs the GIL
    # for each read, which a busy producer thread holds for up to the switch interval (5 ms).
    cursor.copy_expert(
        sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        ),
        io.StringIO(text),
        size=len(text) + 1,
    )


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    text = value if isinstance(value, str) else str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
