"""``--bulk`` of a CSV file: read in columns, staged whole, resolved in SQL (``db.staging``).

The file is read a chunk at a time (``ColumnarCsvReader.chunks``: memory stays bounded by a
chunk). Repeats of an earlier row and known rows are dropped as the shared mode drops them, by
their digests and before they are validated (``fresh``), so a re-import validates and stages
nothing. The rows decided in columns are COPYed into the staging table as columns, the others
are validated here by ``records.to_record`` and staged as records, and refusals are stored in
the load's transaction with the codes the writer gives them. When the whole file is staged, the
simple groups are inserted set-based and the tangled rows go through the batch writer in file
order. Counts and outcomes are those of the shared mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapers import metrics
from scrapers.db.write.records import TrackRecord
from scrapers.db.write.validation import validate
from scrapers.db.write.writer import BatchWriter
from scrapers.importers.columnar import ColumnarCsvReader
from scrapers.importers.csv_reader import CSV_METADATA
from scrapers.importers.fresh import fresh_rows
from scrapers.importers.progress import Progress
from scrapers.importers.rejections import RejectionLog
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
    known = None if importer.reapply else writer.known_rows
    for chunk in reader.chunks():
        fresh = fresh_rows(chunk, importer.seen, known, summary)
        rejections.store(fresh.unreadable)
        decided = fresh.decided
        load.add_columns(decided.fast, decided.credits, CSV_METADATA)
        others = fresh.to_validate()
        items = [row.item for _, _, row in others]
        valid, refused = validate(items, [row.location for _, _, row in others])
        staged = []
        for index, record in valid:
            assert isinstance(record, TrackRecord)  # a CSV row is a track or refused
            line, digest, row = others[index]
            staged.append((line, row.location, digest, record))
        load.add_records(staged)
        if refused:
            # Stored in the load's transaction, as the writer stores every refusal.
            summary.stored.add(writer.write_validated(([], refused), refused))
        metrics.IMPORT_ROWS.labels(RowOutcome.SENT).inc(decided.fast.height + len(items))
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
