"""The import run: files -> readers -> batches -> the batch writer, with progress and a summary.

Koito's bulk-import lessons, as they apply here:

* batches, not rows: each batch is one transaction of set-based statements in the batch writer
  (COPY into temporary tables, then merges), the same engine the crawl uses;
* in-memory deduplication: a row identical to one already sent in this run is not sent again
  (listening histories repeat the same play thousands of times);
* a persistent memory of rows (``known_rows``, migration 009): a row an earlier import stored
  as a track that still exists is neither validated nor written again, so re-importing a file
  costs little more than reading it. ``reapply`` turns this off (rows are then applied again
  through the merge rule, say after a track was edited by hand);
* no slow lookups during the import: enrichment is skipped, tracks without an ISRC are stored
  with ``enrichment_status = 'pending'`` and the enrichment service backfills them later;
* three stages at once (``overlap``): this process reads the next batch while a second process
  validates the one before (``validation_pool``, started once the first batch is full, so a
  small file costs no process) and the writer's thread stores the one before that.

Idempotency: every write is an upsert that resolves before it inserts, so running the same
import again changes nothing (with the known rows skipped, it writes nothing), and an interrupted
import (Ctrl-C, a killed process) is finished by running it again. The rejections of a file are
those of its latest run: each run first clears the ``rejected_items`` rows with the file's origin,
then records its own.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import psycopg2

from scrapers import metrics
from scrapers.db.write.batch import BatchResult
from scrapers.db.write.garbage import rare_collection
from scrapers.db.write.records import TrackRecord
from scrapers.db.write.validation import validation_pool
from scrapers.db.write.writer import BatchWriter, DatabaseUnavailable
from scrapers.importers import staged
from scrapers.importers.columnar import Chunk, ColumnarCsvReader, FastRow
from scrapers.importers.detect import READERS, detect_format
from scrapers.importers.fresh import fresh_rows
from scrapers.importers.overlap import OverlappedWriter
from scrapers.importers.progress import Progress
from scrapers.importers.rejections import RejectionLog
from scrapers.importers.source import FileReader, SourceRow, row_digest
from scrapers.importers.summary import (
    DryRunWriter,
    FileOutcome,
    ImportSummary,
    Writer,
)
from scrapers.metrics import RowOutcome

logger = logging.getLogger("scrapers.importers")

DEFAULT_BATCH_SIZE = 5000
# Digests of rows already sent; past this many the set starts afresh (memory stays bounded,
# later identical rows are then written again, which the upsert makes harmless).
MAX_REMEMBERED_ROWS = 4_000_000
PROGRESS_EVERY_ROWS = 1024
# Raw text of unreadable rows held before it is written out (each row keeps up to 64 KiB).
MAX_PENDING_REJECTED_CHARS = 16 << 20
# After Ctrl-C or SIGTERM, how long the batches already handed to the writer may take to commit
# before their statement is cancelled (a supervisor's `kill -9` follows SIGTERM within seconds).
STOP_GRACE_SECONDS = 2.0


# Formats read in columns (validated there too for the rows they decide exactly).
COLUMNAR_READERS: dict[str, type[FileReader]] = {"csv": ColumnarCsvReader}


class Importer:
    """Imports files into the catalogue at ``url`` (``None`` with ``dry_run``).

    ``validation_process`` False validates in this process (one core's worth of Python).
    ``bulk``: each file is loaded in one transaction (``scrapers.db.write.bulk``): other sessions
    wait for the catalogue's tables until it ends, and a file not loaded to its end stores nothing.
    ``reapply``: rows an earlier import stored are sent to the writer again instead of skipped.
    """

    def __init__(
        self,
        url: str | None,
        *,
        dry_run: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress_stream: TextIO | None = None,
        interactive: bool | None = None,
        log_every: float = 10.0,
        validation_process: bool = True,
        bulk: bool = False,
        reapply: bool = False,
    ) -> None:
        self.url = url
        self.reapply = reapply
        self.bulk = bulk and not dry_run
        self.validation_process = validation_process and not dry_run
        self._validation_pool: ProcessPoolExecutor | None = None
        self.dry_run = dry_run
        self.batch_size = batch_size
        self.progress_stream = progress_stream
        self.interactive = interactive
        self.log_every = log_every
        self._sent: set[bytes] = set()
        self._pending: deque[Future[BatchResult]] = deque()
        # The writer of the file being imported, for ``interrupt`` (another thread).
        self._storing: BatchWriter | None = None
        self._interrupted = False

    def run(self, paths: Iterable[Path], fmt: str = "auto") -> ImportSummary:
        """Import every file in turn; a file that cannot be read at all does not stop the rest.

        A Ctrl-C (``KeyboardInterrupt``) stops reading; the batches already handed to the writer
        (at most two) are committed first, and the summary says the run was interrupted. A
        statement that would keep it waiting is cancelled by ``interrupt``.
        """
        paths = list(paths)
        summary = ImportSummary(dry_run=self.dry_run)
        started = time.monotonic()
        progress = Progress(
            sum(map(file_size, paths)),
            stream=self.progress_stream,
            interactive=self.interactive,
            log_every=self.log_every,
        )
        done_bytes = 0
        try:
            with rare_collection():
                for path in paths:
                    self._import_file(path, fmt, summary, progress, done_bytes)
                    done_bytes += file_size(path)
        except KeyboardInterrupt:
            summary.interrupted = True
        except (DatabaseUnavailable, psycopg2.Error):
            # What a cancelled statement raises, when it gets here before the KeyboardInterrupt.
            if not self._interrupted:
                raise
            summary.interrupted = True
        finally:
            if self._validation_pool is not None:
                self._validation_pool.shutdown(wait=True)
                self._validation_pool = None
            progress.close()
            summary.elapsed = time.monotonic() - started
        return summary

    def interrupt(self, waited: float, signals: int) -> None:
        """Ctrl-C or SIGTERM came ``waited`` seconds ago (``signals`` of them so far): cancel
        the writer's statement if it keeps the run from stopping. From another thread
        (``stopping.SignalWatcher``), since the thread running the statement hears nothing until
        it ends; called again and again.

        A bulk load is cancelled at once (it is rolled back whole anyway); the shared mode's
        batches already handed over get ``STOP_GRACE_SECONDS`` to commit first, unless a second
        signal insists.
        """
        self._interrupted = True
        writer = self._storing
        if writer is not None and (self.bulk or signals > 1 or waited >= STOP_GRACE_SECONDS):
            writer.cancel()

    def _import_file(
        self, path: Path, fmt: str, summary: ImportSummary, progress: Progress, done_bytes: int
    ) -> None:
        outcome = FileOutcome(str(path), None, fmt == "auto")
        summary.files.append(outcome)
        try:
            outcome.format = detect_format(path) if fmt == "auto" else fmt
        except (OSError, ValueError) as error:
            outcome.error = str(error)
            logger.error("%s: %s", path, error)
            return
        if outcome.detected:
            logger.info("%s: detected format %s", path, outcome.format)
        reader = (READERS | COLUMNAR_READERS)[outcome.format](path)
        origin = f"import:{path.resolve()}"
        writer = self._writer(origin, progress)
        if isinstance(writer, OverlappedWriter):
            self._storing = writer.writer
        rejections = RejectionLog(None if self.dry_run else self.url, origin)
        batch = _Batch()
        stored_before, finished = copy.deepcopy(summary.stored), False
        try:
            rejections.clear()
            if isinstance(writer, OverlappedWriter) and self.bulk:
                writer.begin_bulk(progress.waiting)
            try:
                if self.bulk:
                    assert isinstance(writer, OverlappedWriter)
                    staged.load_file(
                        self, reader, writer.writer, rejections, summary, progress, done_bytes
                    )
                else:
                    self._read(reader, batch, writer, rejections, summary, progress, done_bytes)
                self._flush(batch, writer, rejections, summary)
                self._collect(summary, wait=True)
            except (OSError, ValueError) as error:
                # The reader could not go on (unreadable file, no CSV header, no JSON array): what
                # was read before is stored, the rest of the file is reported as failed.
                self._flush(batch, writer, rejections, summary)
                self._collect(summary, wait=True)
                outcome.error = str(error)
                logger.error("%s: %s", path, error)
            if isinstance(writer, OverlappedWriter) and self.bulk:
                writer.finish()
            finished = True
        finally:
            # After Ctrl-C this waits for the batches already handed over (at most two) to commit;
            # a bulk load not finished is rolled back whole.
            writer.close()
            self._storing = None
            rejections.close()
            self._collect(summary, wait=False)
            if self.bulk and not finished:
                summary.stored = stored_before
                outcome.error = outcome.error or "bulk load rolled back: nothing of it was stored"
        progress.update(summary.read, done_bytes + file_size(path))

    def _read(
        self,
        reader: FileReader,
        batch: _Batch,
        writer: Writer,
        rejections: RejectionLog,
        summary: ImportSummary,
        progress: Progress,
        done_bytes: int,
    ) -> None:
        """Every row of ``reader`` to the writer, a batch at a time (a chunk at a time when it
        reads in columns: known rows are then dropped before a batch is made)."""
        if isinstance(reader, ColumnarCsvReader):
            batch.checked = True
            for chunk in reader.chunks():
                self._take_chunk(chunk, batch, writer, rejections, summary)
                progress.update(summary.read, done_bytes + reader.bytes_read())
            return
        for row in reader.rows():
            summary.read += 1
            self._take(row, batch, summary)
            if batch.full(self.batch_size):
                self._flush(batch, writer, rejections, summary, full=True)
            if summary.read % PROGRESS_EVERY_ROWS == 0:
                progress.update(summary.read, done_bytes + reader.bytes_read())

    def _take_chunk(
        self,
        chunk: Chunk,
        batch: _Batch,
        writer: Writer,
        rejections: RejectionLog,
        summary: ImportSummary,
    ) -> None:
        """A chunk of a file read in columns: its repeats and known rows are dropped before
        they are validated (``fresh``), the rest goes into batches."""
        fresh = fresh_rows(chunk, self.seen, None if self.reapply else writer.known, summary)
        for unreadable in fresh.unreadable:
            batch.reject(unreadable)
            if batch.full(self.batch_size):
                self._flush(batch, writer, rejections, summary, full=True)
        for _, digest, row in fresh.rows():
            if isinstance(row, FastRow):
                batch.add(row.item, row.location, digest, row.record)
            else:
                assert row.item is not None
                batch.add(row.item, row.location, digest, None)
            if batch.full(self.batch_size):
                self._flush(batch, writer, rejections, summary, full=True)

    def _writer(self, origin: str, progress: Progress) -> Writer:
        if self.dry_run:
            return DryRunWriter()
        assert self.url is not None
        return OverlappedWriter(
            BatchWriter(
                self.url,
                origin=origin,
                bulk=self.bulk,
                on_lock_wait=progress.writes_waiting,
                on_step=progress.step,
            )
        )

    def _use_validation_process(self, writer: Writer) -> None:
        if isinstance(writer, OverlappedWriter):
            writer.validation_pool = self.validation_process_pool()

    def validation_process_pool(self) -> ProcessPoolExecutor | None:
        """The process that validates while this one reads, started at its first use; None
        when items are validated in this process (``validation_process`` False)."""
        if not self.validation_process:
            return None
        if self._validation_pool is None:
            self._validation_pool = validation_pool()
        return self._validation_pool

    def _take(self, row: SourceRow, batch: _Batch, summary: ImportSummary) -> None:
        if row.error is not None:
            summary.unreadable[row.error] += 1
            batch.reject(row)
        elif row.skipped is not None:
            summary.skipped[row.skipped] += 1
            metrics.IMPORT_ROWS.labels(RowOutcome.SKIPPED).inc()
        else:
            digest = row_digest(row.item)
            if self.seen(digest):
                summary.duplicates += 1
                metrics.IMPORT_ROWS.labels(RowOutcome.DUPLICATE).inc()
            else:
                batch.add(row.item, row.location, digest, None)

    def seen(self, digest: bytes | None) -> bool:
        """Whether an identical item was already sent in this run (never for no ``digest``)."""
        if digest is None:
            return False
        if digest in self._sent:
            return True
        if len(self._sent) >= MAX_REMEMBERED_ROWS:
            self._sent.clear()
        self._sent.add(digest)
        return False

    def _flush(
        self,
        batch: _Batch,
        writer: Writer,
        rejections: RejectionLog,
        summary: ImportSummary,
        *,
        full: bool = False,
    ) -> None:
        """Hand the batch over; a ``full`` one may start the validation process."""
        rejections.store(batch.unreadable)
        if not self.reapply and not batch.checked:
            self._drop_known(batch, writer, summary)
        if batch.items:
            # Rows read in columns come validated and the few others are validated in this
            # thread (``OverlappedWriter.submit``): only a batch of none may start the process.
            records = batch.records if any(batch.records) else None
            if full and records is None:
                self._use_validation_process(writer)
            # Validated and written while the next batch is read.
            self._pending.append(
                writer.submit(batch.items, batch.locations, batch.digests, records)
            )
            metrics.IMPORT_ROWS.labels(RowOutcome.SENT).inc(len(batch.items))
            self._collect(summary, wait=False)
        batch.clear()

    def _drop_known(self, batch: _Batch, writer: Writer, summary: ImportSummary) -> None:
        """Take the rows an earlier import stored out of the batch: one query."""
        known = writer.known([digest for digest in batch.digests if digest is not None])
        if not known:
            return
        kept = [i for i, digest in enumerate(batch.digests) if digest not in known]
        dropped = len(batch.items) - len(kept)
        batch.items = [batch.items[i] for i in kept]
        batch.locations = [batch.locations[i] for i in kept]
        batch.digests = [batch.digests[i] for i in kept]
        batch.records = [batch.records[i] for i in kept]
        summary.known += dropped
        metrics.IMPORT_ROWS.labels(RowOutcome.KNOWN).inc(dropped)

    def _collect(self, summary: ImportSummary, *, wait: bool) -> None:
        """Add the results of written batches, in order; ``wait`` for all, raising failures."""
        while self._pending and (wait or self._pending[0].done()):
            future = self._pending.popleft()
            if wait or future.exception() is None:
                summary.stored.add(future.result())


@dataclass
class _Batch:
    items: list[Any] = field(default_factory=list)
    locations: list[str | None] = field(default_factory=list)
    # ``row_digest`` of each item.
    digests: list[bytes | None] = field(default_factory=list)
    # The record of each item decided in columns (``FastRow``), None for the writer to validate.
    records: list[TrackRecord | None] = field(default_factory=list)
    unreadable: list[SourceRow] = field(default_factory=list)
    unreadable_chars: int = 0
    # Known rows already dropped (a chunk at a time, ``fresh``): none to look up at a flush.
    checked: bool = False

    def full(self, size: int) -> bool:
        return (
            len(self.items) >= size
            or len(self.unreadable) >= size
            or self.unreadable_chars >= MAX_PENDING_REJECTED_CHARS
        )

    def add(
        self, item: dict[str, Any], location: str, digest: bytes | None, record: TrackRecord | None
    ) -> None:
        self.items.append(item)
        self.locations.append(location)
        self.digests.append(digest)
        self.records.append(record)

    def reject(self, row: SourceRow) -> None:
        self.unreadable.append(row)
        self.unreadable_chars += len(row.payload.text) if row.payload else 0

    def clear(self) -> None:
        self.items, self.locations, self.digests, self.unreadable = [], [], [], []
        self.records = []
        self.unreadable_chars = 0


def file_size(path: Path) -> int:
    """Bytes in ``path``; 0 for a missing file (reported as failed, not fatal to the run)."""
    return path.stat().st_size if path.is_file() else 0
