"""``--bulk`` of any file: staged whole, resolved in SQL (``db.write.staging``).

The file is read a chunk at a time (memory stays bounded by a chunk): a CSV file in columns
(``ColumnarCsvReader.chunks``), any other format row by row (``FileReader.rows``). Repeats of an
earlier row and known rows are dropped as the shared mode drops them (the same
``Importer.seen`` and ``known_rows.known``, one query a chunk), so a re-import stages nothing.
The rows decided in columns are COPYed into the staging table as columns, the others are
validated here by ``records.to_record`` and staged as records (setlists and the rows placed in
them held whole for the writer), and refusals are stored in the load's transaction with the
codes the writer gives them. When the whole file is staged, the simple groups are inserted
set-based and the tangled and held rows go through the batch writer in file order. Counts and
outcomes are those of the shared mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from scrapers import metrics
from scrapers.db.write.staging import StagedLoad
from scrapers.db.write.staging_rows import ValidatedText, validated_text
from scrapers.db.write.writer import BatchWriter
from scrapers.importers.columnar import CHUNK_LINES, Chunk, ColumnarCsvReader
from scrapers.importers.csv_reader import CSV_METADATA
from scrapers.importers.progress import Progress
from scrapers.importers.rejections import RejectionLog
from scrapers.importers.source import FileReader, SourceRow, row_digest
from scrapers.importers.summary import ImportSummary
from scrapers.metrics import RowOutcome

if TYPE_CHECKING:
    from scrapers.importers.driver import Importer  # which calls this module


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
    try:
        if isinstance(reader, ColumnarCsvReader):
            for chunk in reader.chunks():
                _stage_chunk(importer, load, writer, chunk, rejections, summary)
                progress.update(summary.read, done_bytes + reader.bytes_read())
        else:
            _stage_rows(importer, load, writer, reader, rejections, summary, progress, done_bytes)
    except (OSError, ValueError):
        _resolve(importer, load, writer, summary)
        raise
    _resolve(importer, load, writer, summary)


def _row_chunks(reader: FileReader) -> Iterator[list[tuple[int, SourceRow]]]:
    """The reader's rows numbered in file order, ``CHUNK_LINES`` at a time; a reader that
    cannot go on ends its last chunk with the rows read before, then raises."""
    chunk: list[tuple[int, SourceRow]] = []
    try:
        for number, row in enumerate(reader.rows(), start=1):
            chunk.append((number, row))
            if len(chunk) == CHUNK_LINES:
                yield chunk
                chunk = []
    except (OSError, ValueError):
        yield chunk
        raise
    if chunk:
        yield chunk


def _stage_chunk(
    importer: Importer,
    load: StagedLoad,
    writer: BatchWriter,
    chunk: Chunk,
    rejections: RejectionLog,
    summary: ImportSummary,
) -> None:
    """A chunk of a CSV file read in columns: its fast rows staged as columns, the others as
    records (``_stage_items``)."""
    summary.read += chunk.fast.height + len(chunk.slow)
    fast = dict(zip(chunk.fast["line"].to_list(), chunk.fast["digest"].to_list(), strict=True))
    kept, items, lines, locations, digests = _new_rows(
        importer, fast, chunk.slow, rejections, summary
    )
    known = _known(importer, writer, list(kept.values()), summary)
    fast_lines = [line for line, digest in kept.items() if digest not in known]
    load.add_columns(
        chunk.fast.filter(pl.col("line").is_in(fast_lines)),
        chunk.credits.filter(pl.col("line").is_in(fast_lines)),
        CSV_METADATA,
    )
    metrics.IMPORT_ROWS.labels(RowOutcome.SENT).inc(len(fast_lines))
    _stage_items(importer, load, writer, items, lines, locations, digests, summary)


@dataclass
class _Rows:
    """Rows read as items (``SourceRow``) to validate and stage, with where they came from."""

    items: list[dict[str, Any]]
    lines: list[int]
    locations: list[str]
    digests: list[bytes | None]


def _stage_rows(
    importer: Importer,
    load: StagedLoad,
    writer: BatchWriter,
    reader: FileReader,
    rejections: RejectionLog,
    summary: ImportSummary,
    progress: Progress,
    done_bytes: int,
) -> None:
    """Every row of a reader of items, a chunk at a time: each chunk is validated in the
    validation process while the next is read, as the shared mode validates its batches (a
    file of one chunk starts no process), then staged."""
    pending: tuple[Future[ValidatedText], _Rows] | None = None
    stopped: OSError | ValueError | None = None
    try:
        for chunk_rows in _row_chunks(reader):
            summary.read += len(chunk_rows)
            _, *new = _new_rows(importer, {}, chunk_rows, rejections, summary)
            rows = _unknown(importer, writer, _Rows(*new), summary)
            pool = importer.validation_process_pool() if len(chunk_rows) == CHUNK_LINES else None
            if pool is None:
                validated: Future[ValidatedText] = Future()
                validated.set_result(
                    validated_text(rows.items, rows.locations, rows.lines, rows.digests)
                )
            else:
                validated = pool.submit(
                    validated_text, rows.items, rows.locations, rows.lines, rows.digests
                )
            if pending is not None:
                _add_validated(load, writer, pending[0].result(), pending[1], summary)
            pending = (validated, rows)
            progress.update(summary.read, done_bytes + reader.bytes_read())
    except (OSError, ValueError) as error:
        stopped = error  # the reader cannot go on: the rows read before are staged first
    if pending is not None:
        _add_validated(load, writer, pending[0].result(), pending[1], summary)
    if stopped is not None:
        raise stopped


def _stage_items(
    importer: Importer,
    load: StagedLoad,
    writer: BatchWriter,
    items: list[dict[str, Any]],
    lines: list[int],
    locations: list[str],
    digests: list[bytes | None],
    summary: ImportSummary,
) -> None:
    """A CSV chunk's rows read as items (``SourceRow``), less known rows, validated here (they
    are few) and staged."""
    rows = _unknown(importer, writer, _Rows(items, lines, locations, digests), summary)
    _add_validated(
        load,
        writer,
        validated_text(rows.items, rows.locations, rows.lines, rows.digests),
        rows,
        summary,
    )


def _unknown(importer: Importer, writer: BatchWriter, rows: _Rows, summary: ImportSummary) -> _Rows:
    """``rows`` less those an earlier import stored (``_known``)."""
    known = _known(
        importer, writer, [digest for digest in rows.digests if digest is not None], summary
    )
    new = [i for i, digest in enumerate(rows.digests) if digest not in known]
    return _Rows(*([values[i] for i in new] for values in vars(rows).values()))


def _add_validated(
    load: StagedLoad,
    writer: BatchWriter,
    validated: ValidatedText,
    rows: _Rows,
    summary: ImportSummary,
) -> None:
    """Stage the records of ``rows`` (``StagedLoad.add_records``: tracks, setlists and the rows
    placed in them); refusals are stored in the load's transaction, as the writer stores every
    refusal."""
    text, refused = validated
    load.add_records(text)
    if refused:
        summary.stored.add(writer.write_validated(([], refused), refused))
    metrics.IMPORT_ROWS.labels(RowOutcome.SENT).inc(len(rows.items))


def _known(
    importer: Importer, writer: BatchWriter, digests: list[bytes], summary: ImportSummary
) -> set[bytes]:
    """The ``digests`` an earlier import stored (none with ``reapply``): one query, counted."""
    known = set() if importer.reapply else writer.known_rows(digests)
    if known:
        summary.known += len(known)
        metrics.IMPORT_ROWS.labels(RowOutcome.KNOWN).inc(len(known))
    return known


def _resolve(
    importer: Importer, load: StagedLoad, writer: BatchWriter, summary: ImportSummary
) -> None:
    """The staged rows stored: the simple groups set-based, then the tangled and held rows
    through the batch writer in file order."""
    if not load.rows:
        return
    summary.stored.add(writer.write_staged(load))
    tangled = False
    for records, locations, digests in load.tangled(importer.batch_size):
        validated = (list(enumerate(records)), [])
        summary.stored.add(writer.write_validated(validated, records, locations, digests=digests))
        tangled = True
    if tangled:
        load.name_artists()


def _new_rows(
    importer: Importer,
    fast: dict[int, bytes],
    slow: list[tuple[int, SourceRow]],
    rejections: RejectionLog,
    summary: ImportSummary,
) -> tuple[dict[int, bytes], list[dict[str, Any]], list[int], list[str], list[bytes | None]]:
    """A chunk's rows in file order less repeats of an earlier row of the run (the shared
    mode's ``Importer.seen``): ``fast``, the rows read in columns (line -> digest), and
    ``slow``, the others (line, row); unreadable rows are stored. Returns the fast rows kept
    and the other rows' items, lines, locations and digests."""
    kept: dict[int, bytes] = {}
    unreadable, items, lines, locations, digests = [], [], [], [], []
    rows = iter(slow)
    waiting = next(rows, None)
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
            waiting = next(rows, None)
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
