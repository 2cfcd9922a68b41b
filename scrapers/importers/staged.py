"""``--bulk`` of a CSV file: read in columns, staged whole, resolved in SQL (``db.staging``).

The file is read a chunk at a time (``ColumnarCsvReader.chunks``: memory stays bounded by a
chunk); the rows decided in columns are COPYed into the staging table as columns, the others are
validated here by ``records.to_record`` and staged as records, and refusals are stored in the
load's transaction with the codes the writer gives them. When the whole file is staged, repeats
and known rows are dropped in SQL, the simple groups are inserted set-based and the tangled rows
go through the batch writer in file order. Counts and outcomes are those of the shared mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapers import metrics
from scrapers.db.records import TrackRecord
from scrapers.db.validation import validate
from scrapers.db.writer import BatchWriter
from scrapers.importers.columnar import ColumnarCsvReader
from scrapers.importers.csv_reader import CSV_METADATA
from scrapers.importers.progress import Progress
from scrapers.importers.source import row_digest
from scrapers.importers.summary import ImportSummary, RowOutcome

if TYPE_CHECKING:
    from scrapers.importers.driver import Importer, RejectionLog


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
    for chunk in reader.chunks():
        summary.read += chunk.fast.height + len(chunk.slow)
        load.add_columns(chunk.fast, chunk.credits, CSV_METADATA)
        unreadable, items, lines, locations, digests = [], [], [], [], []
        for line, row in chunk.slow:
            if row.error is not None:
                summary.unreadable[row.error] += 1
                unreadable.append(row)
            elif row.skipped is not None:
                summary.skipped[row.skipped] += 1
                metrics.IMPORT_ROWS.labels(RowOutcome.SKIPPED).inc()
            else:
                digest = row_digest(row.item)
                if importer.seen(digest):
                    summary.duplicates += 1
                    metrics.IMPORT_ROWS.labels(RowOutcome.DUPLICATE).inc()
                else:
                    items.append(row.item)
                    lines.append(line)
                    locations.append(row.location)
                    digests.append(digest)
        rejections.store(unreadable)
        valid, refused = validate(items, locations)
        staged = []
        for index, record in valid:
            assert isinstance(record, TrackRecord)  # a CSV row is a track or refused
            staged.append((lines[index], locations[index], digests[index], record))
        load.add_records(staged)
        if refused:
            # Stored in the load's transaction, as the writer stores every refusal.
            summary.stored.add(writer.write_validated(([], refused), refused))
            metrics.IMPORT_ROWS.labels(RowOutcome.SENT).inc(len(refused))
        progress.update(summary.read, done_bytes + reader.bytes_read())
    skipped = load.skip(reapply=importer.reapply)
    summary.duplicates += skipped.duplicates
    summary.known += skipped.known
    metrics.IMPORT_ROWS.labels(RowOutcome.DUPLICATE).inc(skipped.duplicates)
    metrics.IMPORT_ROWS.labels(RowOutcome.KNOWN).inc(skipped.known)
    if skipped.remaining:
        summary.stored.add(writer.write_staged(load))
        tangled = False
        for records, locations, digests in load.tangled(importer.batch_size):
            validated = (list(enumerate(records)), [])
            summary.stored.add(
                writer.write_validated(validated, records, locations, digests=digests)
            )
            tangled = True
        if tangled:
            load.name_artists()
    metrics.IMPORT_ROWS.labels(RowOutcome.SENT).inc(skipped.remaining)
