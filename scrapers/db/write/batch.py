"""One batch's statements in one transaction, parents before children, what it stored, and
the metrics of what was committed."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import psycopg2.extensions

from scrapers import metrics
from scrapers.db.write import known_rows, records, setlist_statements, statements
from scrapers.db.write.conflict_policy import Conflict
from scrapers.db.write.conflicts import count_conflicts, insert_conflicts
from scrapers.db.write.locks import OnLockWait, lock_key, lock_keys
from scrapers.db.write.records import Placement, SetlistRecord, TrackRecord
from scrapers.db.write.rejected_items import insert_rejections
from scrapers.db.write.resolution import Resolution
from scrapers.db.write.validation import Rejection
from scrapers.metrics import MatchTier, RowChange

logger = logging.getLogger(__name__)


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
    # By the strongest identifier each item carried (``TrackRecord.tier``).
    tiers: Counter[str] = field(default_factory=Counter)
    # By how each item was actually matched.
    matched: Counter[MatchTier] = field(default_factory=Counter)
    # (tier, "inserted" | "updated"): the import summary's per-tier split.
    tier_outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    conflicts: int = 0
    invalid_identifiers: int = 0
    # Sets not written because the catalogue holds a newer fetch of them (their tracks were).
    outdated_setlists: int = 0

    def add(self, other: BatchResult) -> None:
        for name in ("items", "inserted", "updated", "setlists", "setlist_rows", "conflicts",
                     "outdated_setlists"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.invalid_identifiers += other.invalid_identifiers
        self.rejected.update(other.rejected)
        self.row_changes.update(other.row_changes)
        self.tiers.update(other.tiers)
        self.matched.update(other.matched)
        self.tier_outcomes.update(other.tier_outcomes)

    @property
    def stored(self) -> int:
        return self.items - sum(self.rejected.values())


@dataclass
class Applied:
    """What a transaction did that is reported only after it commits."""

    isrc_upserts: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    # Sets left as stored: (set, the batch's fetch time, the stored one).
    outdated: list[tuple[tuple[str, str], dt.datetime | None, dt.datetime]] = field(
        default_factory=list
    )


def apply(
    cursor: psycopg2.extensions.cursor,
    prepared: list[records.Record],
    rejections: list[Rejection],
    origin: str,
    on_lock_wait: OnLockWait | None = None,
) -> tuple[BatchResult, Applied]:
    """Every statement of one batch, parents before children; ``on_lock_wait`` as
    ``locks.wait_for_locks``."""
    result = BatchResult()
    applied = Applied()
    setlists = setlist_statements.merged_setlists(
        r for r in prepared if isinstance(r, SetlistRecord)
    )
    rows = [r for r in prepared if isinstance(r, TrackRecord)]
    tracks = [r for r in rows if r.is_track]

    lock_keys(cursor, _lock_keys_for(setlists, rows), on_lock_wait)
    resolution = Resolution()
    statements.fetch_candidates(cursor, tracks, resolution)

    # A set stored from a newer fetch keeps its fields and rows; the batch's tracks are stored.
    outdated = setlist_statements.outdated_sets(
        cursor,
        setlist_statements.fetch_times(
            setlists, (r.placement for r in rows if r.placement is not None)
        ),
    )
    applied.outdated = [(key, *times) for key, times in sorted(outdated.items())]
    result.outdated_setlists = len(outdated)
    setlists = [s for s in setlists if s.key not in outdated]

    placements: dict[tuple[tuple[str, str], int], tuple[Placement, str | None]] = {}
    digests: list[tuple[bytes, str]] = []
    for record in rows:
        track_id = None
        if record.is_track:
            track, matched = resolution.resolve(record)
            created = matched is MatchTier.NEW
            track_id = track.id
            result.matched[matched] += 1
            result.tiers[record.tier] += 1
            result.tier_outcomes[(record.tier, "inserted" if created else "updated")] += 1
            if created:
                result.inserted += 1
            else:
                result.updated += 1
            if record.isrc:
                applied.isrc_upserts.append(record.isrc)
            if record.row_digest is not None and record.placement is None:
                digests.append((record.row_digest, track.id))
        placement = record.placement
        if placement is not None and placement.setlist_key not in outdated:
            slot = (placement.setlist_key, placement.row_index)
            if _not_older(placement, placements.get(slot)):
                placements[slot] = (placement, track_id)

    setlist_ids = setlist_statements.write_setlists(
        cursor,
        setlists,
        setlist_statements.fetch_times([], (placement for placement, _ in placements.values())),
    )
    result.setlists = len(setlists)
    statements.write_tracks(cursor, resolution)
    known_rows.store(cursor, digests)
    statements.write_lookup(cursor, resolution.new_spellings)
    result.row_changes = setlist_statements.write_setlist_rows(cursor, placements, setlist_ids)
    result.row_changes[RowChange.REMOVED] = setlist_statements.remove_rows_past_the_end(
        cursor, setlists, setlist_ids
    )
    result.setlist_rows = len(placements)
    applied.conflicts = insert_conflicts(cursor, resolution.conflicts, origin)
    result.conflicts = len(applied.conflicts)
    if rejections:
        insert_rejections(cursor, rejections, origin)
        result.rejected.update(r.code for r in rejections)
    return result, applied


def _not_older(placement: Placement, held: tuple[Placement, str | None] | None) -> bool:
    """Whether ``placement`` replaces the row ``held`` for its slot: the newest fetch wins, and
    of one fetch the last row given."""
    if held is None or held[0].fetched_at is None:
        return True
    return placement.fetched_at is not None and placement.fetched_at >= held[0].fetched_at


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
        for key in record.artist_keys():
            yield lock_key("artist", key)


@dataclass
class Uncounted:
    """Committed work not yet in the metrics: counted per batch, or at COMMIT in bulk mode (a
    bulk load rolled back must not have counted its batches)."""

    result: BatchResult = field(default_factory=BatchResult)
    invalid: Counter[str] = field(default_factory=Counter)
    conflicts: list[Conflict] = field(default_factory=list)
    isrc_upserts: list[str] = field(default_factory=list)
    outdated: list[tuple[tuple[str, str], dt.datetime | None, dt.datetime]] = field(
        default_factory=list
    )

    def add(self, result: BatchResult, batch: list[records.Record], applied: Applied) -> None:
        self.result.add(result)
        self.outdated += applied.outdated
        for record in batch:
            if isinstance(record, TrackRecord):
                self.invalid.update(record.invalid_identifiers)
        self.conflicts += applied.conflicts
        if logger.isEnabledFor(logging.DEBUG):
            self.isrc_upserts += applied.isrc_upserts

    def publish(self) -> None:
        result = self.result
        metrics.TRACKS_UPSERT_ISRC.inc(result.tiers["isrc"])
        metrics.TRACKS_UPSERT_SPOTIFY.inc(result.tiers["spotify"])
        metrics.TRACKS_UPSERT_TITLE.inc(result.tiers["title"])
        for tier, count in result.matched.items():
            metrics.TRACKS_MATCHED.labels(tier).inc(count)
        metrics.TRACKS_WRITTEN.labels("inserted").inc(result.inserted)
        metrics.TRACKS_WRITTEN.labels("updated").inc(result.updated)
        for change, count in result.row_changes.items():
            metrics.SETLIST_ROWS_CHANGED.labels(change).inc(count)
        for code, count in result.rejected.items():
            metrics.ITEMS_REJECTED.labels(code).inc(count)
        for name, count in self.invalid.items():
            metrics.INVALID_IDENTIFIERS.labels(name).inc(count)
        count_conflicts(self.conflicts)
        metrics.SETLISTS_OUTDATED.inc(len(self.outdated))
        for (source, source_id), fetched, stored in self.outdated:
            logger.warning(
                "Setlist %s/%s not written: its page was fetched %s, before the stored fetch (%s);"
                " its tracks were stored, its rows and fields left as they are",
                source,
                source_id,
                "at an unknown time" if fetched is None else f"at {fetched.isoformat()}",
                stored.isoformat(),
            )
        for isrc in self.isrc_upserts:
            logger.debug("Upserted track via ISRC: %s", isrc)
