"""What an import reports: the run's summary, each file's outcome, and the dry run's writer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from scrapers.db.write import records
from scrapers.db.write.batch import BatchResult
from scrapers.db.write.fields import Rejected
from scrapers.db.write.records import TrackRecord, to_record
from scrapers.importers.progress import format_duration
from scrapers.statuses import RejectionCode


class Writer(Protocol):
    def known(self, digests: Sequence[bytes]) -> set[bytes]: ...

    def submit(
        self,
        items: Sequence[Any],
        locations: Sequence[str | None],
        digests: Sequence[bytes | None] | None = None,
        records: Sequence[TrackRecord | None] | None = None,
    ) -> Future[BatchResult]: ...

    def close(self) -> None: ...


class DryRunWriter:
    """Validates like the batch writer (``records.to_record``) and counts; stores nothing.

    It cannot tell a new track from an existing one without writing, so a dry run reports what
    would be stored per tier and what would be rejected, not inserted versus updated.
    """

    def known(self, digests: Sequence[bytes]) -> set[bytes]:
        """None: with no database to ask, a dry run checks every row."""
        return set()

    def submit(
        self,
        items: Sequence[Any],
        locations: Sequence[str | None],
        digests: Sequence[bytes | None] | None = None,
        records: Sequence[TrackRecord | None] | None = None,
    ) -> Future[BatchResult]:
        future: Future[BatchResult] = Future()
        future.set_result(self.check(items, records))
        return future

    def check(
        self, items: Sequence[Any], validated: Sequence[TrackRecord | None] | None = None
    ) -> BatchResult:
        """Counts of ``items``; ``validated`` holds the records already made (``FastRow``)."""
        result = BatchResult(items=len(items))
        for index, item in enumerate(items):
            record = validated[index] if validated else None
            try:
                record = record or to_record(item)
            except Rejected as error:
                result.rejected[error.code] += 1
                continue
            if isinstance(record, records.SetlistRecord):
                result.setlists += 1
                continue
            if record.is_track:
                result.tiers[record.tier] += 1
            if record.placement is not None:
                result.setlist_rows += 1
            result.invalid_identifiers += len(record.invalid_identifiers)
        return result

    def close(self) -> None:
        return None


@dataclass
class FileOutcome:
    path: str
    format: str | None
    detected: bool
    error: str | None = None


@dataclass
class ImportSummary:
    dry_run: bool = False
    files: list[FileOutcome] = field(default_factory=list)
    read: int = 0
    duplicates: int = 0
    # Rows already stored by an earlier import (``known_rows``): neither validated nor written.
    known: int = 0
    unreadable: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    stored: BatchResult = field(default_factory=BatchResult)
    elapsed: float = 0.0
    interrupted: bool = False

    @property
    def rejected(self) -> int:
        return sum(self.unreadable.values()) + sum(self.stored.rejected.values())

    @property
    def failed_files(self) -> list[FileOutcome]:
        return [outcome for outcome in self.files if outcome.error]

    def _tier_text(self, tier: str) -> str:
        """``isrc 3 = 2 new + 1 matched``; a dry run cannot split new from matched."""
        count = f"{tier} {self.stored.tiers[tier]:,}"
        if self.dry_run:
            return count
        outcomes = self.stored.tier_outcomes
        inserted, updated = outcomes[(tier, "inserted")], outcomes[(tier, "updated")]
        return f"{count} = {inserted:,} new + {updated:,} matched"

    def lines(self) -> list[str]:
        """The human summary printed at the end of a run."""
        stored = self.stored
        verb = "would be stored" if self.dry_run else "stored"
        rate = self.read / self.elapsed if self.elapsed > 0 else 0.0
        lines = [
            f"{'DRY RUN, nothing written. ' if self.dry_run else ''}"
            f"{'INTERRUPTED: run the same command again to finish. ' if self.interrupted else ''}"
            f"Import of {len(self.files)} file(s) in {format_duration(self.elapsed)}"
            f" ({rate:,.0f} rows/s)",
        ]
        for outcome in self.files:
            how = "auto-detected" if outcome.detected else "as given"
            state = f"FAILED: {outcome.error}" if outcome.error else f"{outcome.format} ({how})"
            lines.append(f"  file {outcome.path}: {state}")
        tiers = ", ".join(self._tier_text(tier) for tier in ("isrc", "spotify", "title"))
        lines += [
            f"  rows read:              {self.read:,}",
            f"  duplicates in input:    {self.duplicates:,} (identical to an earlier row)",
        ]
        if not self.dry_run:
            lines.append(
                f"  known, not applied:     {self.known:,} (stored by an earlier import;"
                " --reapply applies them again)"
            )
        lines += [
            f"  tracks {verb} by tier: {tiers}",
        ]
        if not self.dry_run:
            lines.append(
                f"  inserted / updated:     {stored.inserted:,} new tracks, {stored.updated:,}"
                " matched existing ones"
            )
        lines.append(f"  setlists / rows:        {stored.setlists:,} / {stored.setlist_rows:,}")
        if not self.dry_run:
            lines.append(
                f"  setlists outdated:      {stored.outdated_setlists:,} (a newer fetch is"
                " stored: their rows and fields left, their tracks stored)"
            )
        lines += [
            f"  invalid identifiers:    {stored.invalid_identifiers:,} (stored NULL, raw value"
            " kept in metadata)",
            f"  identifier conflicts:   {stored.conflicts:,}"
            + ("" if self.dry_run else " (see identifier_conflicts)"),
            f"  rejected:               {self.rejected:,}"
            + ("" if self.dry_run else " (see rejected_items)"),
        ]
        reasons = Counter(
            {f"{RejectionCode.UNREADABLE}: {k}": n for k, n in self.unreadable.items()}
        )
        reasons.update(stored.rejected)
        lines += [f"    {count:,}  {reason}" for reason, count in reasons.most_common()]
        skipped = sum(self.skipped.values())
        lines.append(f"  skipped (not tracks):   {skipped:,}")
        lines += [f"    {count:,}  {reason}" for reason, count in self.skipped.most_common()]
        return lines
