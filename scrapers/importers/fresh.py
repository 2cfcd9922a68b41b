"""A chunk of a file less its repeats and known rows, and only then validated.

A row's fate is decided before it is paid for: its digest (for a CSV file ``columnar.Chunk``,
from the split fields alone; for any other reader ``row_digest`` of the item read) says whether
the run already sent an identical row (``Importer.seen``) or an earlier import stored it
(``known_rows``, one query a chunk); only the rows left are validated, keyed and built into
records (for a CSV file's plain rows, in columns: ``Chunk.decide``). Both ways of importing a CSV
file take their rows from here (the shared mode, ``driver``; ``--bulk``, ``staged``), and so do
``--bulk``'s other formats (``fresh_items``), so they drop and count the same rows.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter

from scrapers import metrics
from scrapers.importers.columnar import Chunk, Decided, FastRow
from scrapers.importers.source import SourceRow, digest_of
from scrapers.importers.summary import ImportSummary
from scrapers.metrics import RowOutcome

Seen = Callable[[bytes | None], bool]
Known = Callable[[Sequence[bytes]], set[bytes]]


@dataclass
class FreshItems:
    """What is left to store of a chunk's rows read as items, and its unreadable rows (to
    record)."""

    # The rows left (line, digest, row), in file order.
    slow: list[tuple[int, bytes | None, SourceRow]]
    unreadable: list[SourceRow]


@dataclass
class FreshRows(FreshItems):
    """What is left of a CSV chunk: its rows read as items (``slow``), and its plain rows."""

    decided: Decided  # the plain rows left, validated

    def rows(self) -> Iterator[tuple[int, bytes | None, FastRow | SourceRow]]:
        """Every row left, with its line and digest, in file order."""
        return heapq.merge(self.decided.rows(), self.slow, key=itemgetter(0))

    def to_validate(self) -> list[tuple[int, bytes | None, SourceRow]]:
        """The rows left that the columns did not decide, for ``to_record``, in file order."""
        return list(heapq.merge(self.decided.others, self.slow, key=itemgetter(0)))


def fresh_rows(chunk: Chunk, seen: Seen, known: Known | None, summary: ImportSummary) -> FreshRows:
    """``chunk``'s rows that are neither repeats (``seen``, in file order) nor ``known`` (None:
    send them all again, ``--reapply``), then validated; every row is counted in ``summary``."""
    summary.read += len(chunk)
    plain, left = _left(chunk.in_order(), seen, known, summary)
    return FreshRows(left.slow, left.unreadable, chunk.decide([line for line, _ in plain]))


def fresh_items(
    rows: Sequence[tuple[int, SourceRow]],
    seen: Seen,
    known: Known | None,
    summary: ImportSummary,
) -> FreshItems:
    """``fresh_rows`` for the rows of any other reader, numbered in file order (line, row):
    each one digested from its item (``row_digest``)."""
    summary.read += len(rows)
    _, left = _left(((line, digest_of(row), row) for line, row in rows), seen, known, summary)
    return left


def _left(
    in_order: Iterable[tuple[int, bytes | None, SourceRow | None]],
    seen: Seen,
    known: Known | None,
    summary: ImportSummary,
) -> tuple[list[tuple[int, bytes]], FreshItems]:
    """The rows of ``in_order`` (``Chunk.in_order``) left once repeats and known rows are
    dropped: the plain ones (line, digest) and the others; unreadable and skipped rows counted."""
    plain: list[tuple[int, bytes]] = []
    slow: list[tuple[int, bytes | None, SourceRow]] = []
    unreadable: list[SourceRow] = []
    repeats = skipped = 0
    for line, digest, row in in_order:
        if row is None:
            assert digest is not None  # a plain row has an artist and a title
            if seen(digest):
                repeats += 1
            else:
                plain.append((line, digest))
        elif row.error is not None:
            summary.unreadable[row.error] += 1
            unreadable.append(row)
        elif row.skipped is not None:
            summary.skipped[row.skipped] += 1
            skipped += 1
        elif seen(digest):
            repeats += 1
        else:
            slow.append((line, digest, row))
    summary.duplicates += repeats
    metrics.IMPORT_ROWS.labels(RowOutcome.DUPLICATE).inc(repeats)
    metrics.IMPORT_ROWS.labels(RowOutcome.SKIPPED).inc(skipped)
    if known is not None:
        stored = known(
            [digest for _, digest in plain]
            + [digest for _, digest, _ in slow if digest is not None]
        )
        if stored:
            left = len(plain) + len(slow)
            plain = [(line, digest) for line, digest in plain if digest not in stored]
            slow = [entry for entry in slow if entry[1] not in stored]
            dropped = left - len(plain) - len(slow)
            summary.known += dropped
            metrics.IMPORT_ROWS.labels(RowOutcome.KNOWN).inc(dropped)
    return plain, FreshItems(slow, unreadable)
