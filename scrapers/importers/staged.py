"""``--bulk`` of a CSV file: read in columns, staged whole, resolved in SQL (``db.staging``).

The file is read a chunk at a time (``ColumnarCsvReader.chunks``: memory stays bounded by a
chunk). Repeats of an earlier row and known rows are dropped as the shared mode drops them (the
same ``Importer.seen`` and ``known_rows.known``, one query a chunk), so a re-import stages
nothing. The rows decided in columns are COPYed into the staging table as columns, the others
are validated here by ``records.to_record`` and staged as records, and refusals are stored in
the load's transaction with the codes the writer gives them. When the whole file is staged, the
simple groups are inserted set-based and the tangled rows go through the batch writer in file
order. Counts and outcomes are those of the shared mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from scrapers import metrics
from scrapers.db.write.records import TrackRecord
from scrapers.db.write.validation import validate
from scrapers.db.write.writer import BatchWriter
from scrapers.importers.columnar import Chunk, ColumnarCsvReader
from scrapers.importers.csv_reader import CSV_METADATA
from scrapers.importers.progress import Progress
from scrapers.importers.rejections import RejectionLog
from scrapers.importers.source import row_digest
from scrapers.importers.summary import ImportSummary
from scrapers.metrics import RowOutcome

if TYPE_CHECKING:
    from scrapers.importers.driver import Importer  # which calls this module


def load_file(
    importer: Importer,
    reader: ColumnarCsvReader,
    writer: BatchWriter,
    rejections: RejectionLog,
    summary: ImportSummary,
    progress: Progress,
    done_bytes: int,
) -> None:
    """Stage every row of ``reader``'s file, then resolve and store them (``writer`` is in its
    bulk transaction; the caller commits it)."""
    load = writer.stage()
    progress.step("staging the file's rows")
    for chunk in reader.chunks():
        summary.read += chunk.fast.height + len(chunk.slow)
        kept, items, lines, locations, digests = _new_rows(importer, chunk, rejections, summary)
        given = [*kept.values(), *(digest for digest in digests if digest is not None)]
        known = set() if importer.reapply else writer.known_rows(given)
        if known:
            summary.known += len(known)
            metrics.IMPORT_ROWS.labels(RowOutcome.KNOWN).inc(len(known))
        fast_lines = [line for line, digest in kept.items() if digest not in known]
        load.add_columns(
            chunk.fast.filter(pl.col("line").is_in(fast_lines)),
            chunk.credits.filter(pl.col("line").is_in(fast_lines)),
            CSV_METADATA,
        )
        new = [i for i, digest in enumerate(digests) if digest not in known]
        items, lines, locations, digests = (
            [values[i] for i in new] for values in (items, lines, locations, digests)
        )
        valid, refused = validate(items, locations)
        staged = []
        for index, record in valid:
            assert isinstance(record, TrackRecord)  # a CSV row is a track or refused
            staged.append((lines[index], locations[index], digests[index], record))
        load.add_records(staged)
        if refused:
            # Stored in the load's transaction, as the writer stores every refusal.
            summary.stored.add(writer.write_validated(([], refused), refused))
        metrics.IMPORT_ROWS.labels(RowOutcome.SENT).inc(len(fast_lines) + len(items))
        progress.update(summary.read, done_bytes + reader.bytes_read())
    if load.rows:
        summary.stored.add(writer.write_staged(load))
        tangled = False
        progress.step("storing the tangled rows through the batch writer, in file order")
        for records, locations, digests in load.tangled(importer.batch_size):
            validated = (list(enumerate(records)), [])
            summary.stored.add(
                writer.write_validated(validated, records, locations, digests=digests)
            )
            tangled = True
        if tangled:
            load.name_artists()


def _new_rows(
    importer: Importer, chunk: Chunk, rejections: RejectionLog, summary: ImportSummary
) -> tuple[dict[int, bytes], list[dict[str, Any]], list[int], list[str], list[bytes | None]]:
    """A chunk's rows in file order less repeats of an earlier row of the run (the shared
    mode's ``Importer.seen``); unreadable rows are stored. Returns the fast rows kept (line ->
    digest) and the other rows' items, lines, locations and digests."""
    fast = dict(zip(chunk.fast["line"].to_list(), chunk.fast["digest"].to_list(), strict=True))
    kept: dict[int, bytes] = {}
    unreadable, items, lines, locations, digests = [], [], [], [], []
    slow = iter(chunk.slow)
    waiting = next(slow, None)
    for line, digest in [*fast.items(), (None, None)]:
        while waiting is not None and (line is None or waiting[0] < line):
            row = waiting[1]
            if row.error is not None:
                summary.unreadable[row.error] += 1
                unreadable.append(row)
            elif row.skipped is not None:
                summary.skipped[row.skipped] += 1
                metrics.IMPORT_ROWS.labels(RowOutcome.SKIPPED).inc()
            elif not _repeat(importer, digest_of := row_digest(row.item), summary):
                items.append(row.item)
                lines.append(waiting[0])
                locations.append(row.location)
                digests.append(digest_of)
            waiting = next(slow, None)
        if line is not None and not _repeat(importer, digest, summary):
            kept[line] = digest
    rejections.store(unreadable)
    return kept, items, lines, locations, digests


def _repeat(importer: Importer, digest: bytes | None, summary: ImportSummary) -> bool:
    if importer.seen(digest):
        summary.duplicates += 1
        metrics.IMPORT_ROWS.labels(RowOutcome.DUPLICATE).inc()
        return True
    return False
