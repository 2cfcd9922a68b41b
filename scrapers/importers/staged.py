"""``--bulk`` of any file: staged whole, resolved in SQL (``db.write.staging``).

The file is read a chunk at a time (memory stays bounded by a chunk): a CSV file in columns
(``ColumnarCsvReader.chunks``), any other format row by row (``FileReader.rows``). Repeats of an
earlier row and known rows are dropped as the shared mode drops them, by their digests and before
they are validated (``fresh``), so a re-import validates and stages nothing. The rows decided in
columns are COPYed into the staging table as columns; the others are validated by
``records.to_record`` and staged as records (setlists and the rows placed in them held whole for
the writer), a CSV file's few here, another format's in the validation process while the next
chunk is read; refusals are stored in the load's transaction with the codes the writer gives
them. When the whole file is staged, the groups the order cannot change are stored set-based and
the tangled and held rows go through the batch writer in file order. Counts and outcomes are
those of the shared mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from scrapers import metrics
from scrapers.db.write.staging import StagedLoad
from scrapers.db.write.staging_rows import ValidatedText, validated_text
from scrapers.db.write.writer import BatchWriter
from scrapers.importers.columnar import ColumnarCsvReader
from scrapers.importers.csv_reader import CSV_METADATA
from scrapers.importers.fresh import Known, fresh_items, fresh_rows
from scrapers.importers.progress import Progress
from scrapers.importers.rejections import RejectionLog
from scrapers.importers.source import FileReader, SourceRow
from scrapers.importers.summary import ImportSummary
from scrapers.metrics import RowOutcome

if TYPE_CHECKING:
    from scrapers.importers.driver import Importer  # which calls this module

# Rows of a file of items (not CSV) checked and validated together. Fewer than a CSV chunk's
# lines (``columnar.CHUNK_LINES``): an item, its record and its COPY text weigh far more than a
# line split in columns, and two chunks are held at once (one validated while the next is read);
# still enough that the known-row query and the validation process's round trip are paid rarely.
ITEM_CHUNK_ROWS = 10_000


def load_file(
    importer: Importer,
    reader: FileReader,
    writer: BatchWriter,
    rejections: RejectionLog,
    summary: ImportSummary,
    progress: Progress,
    done_bytes: int,
) -> None:
    """Stage every row of ``reader``'s file, then resolve and store them (``writer`` is in its
    bulk transaction; the caller commits it). A file the reader cannot go on with (``OSError``,
    ``ValueError``) has what was read before it resolved and stored, as the shared mode does."""
    load = writer.stage()
    progress.step("staging the file's rows")
    known = None if importer.reapply else writer.known_rows
    try:
        if isinstance(reader, ColumnarCsvReader):
            for chunk in reader.chunks():
                fresh = fresh_rows(chunk, importer.seen, known, summary)
                rejections.store(fresh.unreadable)
                decided = fresh.decided
                load.add_columns(decided.fast, decided.credits, CSV_METADATA)
                metrics.IMPORT_ROWS.labels(RowOutcome.SENT).inc(decided.fast.height)
                # The rows the columns did not decide: few, validated here.
                _add_validated(
                    load, writer, validated_text(*_columns(fresh.to_validate())), summary
                )
                progress.update(summary.read, done_bytes + reader.bytes_read())
        else:
            _stage_items(
                importer, load, writer, reader, known, rejections, summary, progress, done_bytes
            )
    except (OSError, ValueError):
        _resolve(importer, load, writer, summary, progress)
        raise
    _resolve(importer, load, writer, summary, progress)


def _stage_items(
    importer: Importer,
    load: StagedLoad,
    writer: BatchWriter,
    reader: FileReader,
    known: Known | None,
    rejections: RejectionLog,
    summary: ImportSummary,
    progress: Progress,
    done_bytes: int,
) -> None:
    """Every row of a reader of items, a chunk at a time: each chunk's fresh rows are validated
    in the validation process while the next is read, as the shared mode validates its batches
    (a file of one chunk starts no process), then staged."""
    pending: Future[ValidatedText] | None = None
    stopped: OSError | ValueError | None = None
    try:
        for rows in _row_chunks(reader):
            fresh = fresh_items(rows, importer.seen, known, summary)
            rejections.store(fresh.unreadable)
            # A file of one chunk, or a chunk with nothing left to validate, starts no process.
            full = len(rows) == ITEM_CHUNK_ROWS and bool(fresh.slow)
            pool = importer.validation_process_pool() if full else None
            if pool is None:
                validated: Future[ValidatedText] = Future()
                validated.set_result(validated_text(*_columns(fresh.slow)))
            else:
                validated = pool.submit(validated_text, *_columns(fresh.slow))
            if pending is not None:
                _add_validated(load, writer, pending.result(), summary)
            pending = validated
            progress.update(summary.read, done_bytes + reader.bytes_read())
    except (OSError, ValueError) as error:
        stopped = error  # the reader cannot go on: the rows read before are staged first
    if pending is not None:
        _add_validated(load, writer, pending.result(), summary)
    if stopped is not None:
        raise stopped


def _row_chunks(reader: FileReader) -> Iterator[list[tuple[int, SourceRow]]]:
    """The reader's rows numbered in file order, ``ITEM_CHUNK_ROWS`` at a time; a reader that
    cannot go on ends its last chunk with the rows read before, then raises."""
    chunk: list[tuple[int, SourceRow]] = []
    try:
        for number, row in enumerate(reader.rows(), start=1):
            chunk.append((number, row))
            if len(chunk) == ITEM_CHUNK_ROWS:
                yield chunk
                chunk = []
    except (OSError, ValueError):
        yield chunk
        raise
    if chunk:
        yield chunk


def _columns(
    rows: list[tuple[int, bytes | None, SourceRow]],
) -> tuple[list[dict[str, Any] | None], list[str], list[int], list[bytes | None]]:
    """Fresh rows (line, digest, row) as ``validated_text``'s arguments: items, locations,
    lines and digests (plain lists, cheap to send to the validation process)."""
    return (
        [row.item for _, _, row in rows],
        [row.location for _, _, row in rows],
        [line for line, _, _ in rows],
        [digest for _, digest, _ in rows],
    )


def _add_validated(
    load: StagedLoad, writer: BatchWriter, validated: ValidatedText, summary: ImportSummary
) -> None:
    """Stage the records validated (``StagedLoad.add_records``: tracks, setlists and the rows
    placed in them); refusals are stored in the load's transaction, as the writer stores every
    refusal."""
    text, refused = validated
    load.add_records(text)
    if refused:
        summary.stored.add(writer.write_validated(([], refused), refused))
    metrics.IMPORT_ROWS.labels(RowOutcome.SENT).inc(text.rows + len(refused))


def _resolve(
    importer: Importer,
    load: StagedLoad,
    writer: BatchWriter,
    summary: ImportSummary,
    progress: Progress,
) -> None:
    """The staged rows stored: what the order cannot change set-based, then the tangled and
    held rows through the batch writer in file order."""
    if not load.rows:
        return
    summary.stored.add(writer.write_staged(load))
    tangled = False
    progress.step("storing the tangled rows through the batch writer, in file order")
    for records, locations, digests in load.tangled(importer.batch_size):
        validated = (list(enumerate(records)), [])
        summary.stored.add(writer.write_validated(validated, records, locations, digests=digests))
        tangled = True
    if tangled:
        load.name_artists()
