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

import logging
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import psycopg2
import psycopg2.extensions

from scrapers import metrics
from scrapers.db.server.connection import connect, redacted
from scrapers.db.write import bulk, known_rows, records
from scrapers.db.write.batch import BatchResult, Uncounted, apply
from scrapers.db.write.ids import new_id
from scrapers.db.write.locks import OnLockWait
from scrapers.db.write.records import TrackRecord
from scrapers.db.write.staging import StagedLoad
from scrapers.db.write.statements import SESSION_SETUP
from scrapers.db.write.validation import (
    Entry,
    Rejection,
    Validated,
    entries,
    payload_of,
    validate,
    validation_pool,
)
from scrapers.metrics import RowChange
from scrapers.statuses import RejectionCode

__all__ = [
    "BatchResult",
    "BatchWriter",
    "DatabaseUnavailable",
    "RowChange",
    "new_id",
    "validation_pool",
]

logger = logging.getLogger(__name__)

# Errors after which the same batch may succeed on a new connection or a new attempt.
TRANSIENT_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)
# Errors caused by some item's data: split the batch to find and reject that item.
DATA_ERRORS = (psycopg2.DataError, psycopg2.IntegrityError)
# How often a backend running one of the writer's statements checks that the writer is still
# connected (PostgreSQL 14 and later; Linux servers): the statement of a killed writer ends, and
# its locks are released, this soon after the kill, not when the statement would have finished.
CLIENT_CHECK_INTERVAL = "1s"
CLIENT_CHECK_SINCE = 140000  # server_version of PostgreSQL 14


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached within the retry timeout; nothing of the batch is
    known to be stored, and writing it again later is safe."""


class BatchWriter:
    """Writes batches of items, in the order given, on one connection; synchronous.

    ``origin`` names the producer in ``rejected_items`` and ``identifier_conflicts``
    ("spider:1001tracklists", "import:export.jsonl"). ``retry_timeout`` bounds how long a batch
    waits for a lost database before ``DatabaseUnavailable``.

    ``bulk``: the whole load is one transaction (``scrapers.db.write.bulk``): ``begin_bulk``, then
    writes (each batch a savepoint, no retry: a lost connection loses the load), then
    ``finish_bulk``; closing without ``finish_bulk`` rolls everything back.

    ``on_lock_wait`` is told, each second, how long a batch has waited for another session's
    locks and how many sessions hold them (a bulk import holds every writer's locks until it
    commits); ``give_up`` ends such a wait too. ``on_step`` is told which step of a bulk load's
    SQL runs (``staging``, ``finish_bulk``): long statements with nothing else to show.

    ``write`` validates and stores one batch in the caller's thread; ``write_validated`` stores
    one validated elsewhere (the importer's validation process). Concurrency is the caller's:
    the crawl's pipeline writes from its one worker thread, the importer overlaps reading with
    writing (``scrapers.importers.overlap``). Use one ``BatchWriter`` from one thread; only
    ``give_up`` and ``cancel`` may be called from another.

    Every session asks PostgreSQL to check, during a statement, that the client is still there
    (``CLIENT_CHECK_INTERVAL``): a writer killed with ``kill -9`` in a long statement (say a bulk
    load's, holding the catalogue's tables) has its statement ended and its locks released within
    about a second, instead of when the statement would have finished.
    """

    def __init__(
        self,
        url: str,
        *,
        origin: str,
        retry_timeout: float = 60.0,
        bulk: bool = False,
        on_lock_wait: OnLockWait | None = None,
        on_step: bulk.OnStep | None = None,
    ) -> None:
        self.url = url
        self.origin = origin
        self.retry_timeout = retry_timeout
        self.bulk = bulk
        self.on_lock_wait = on_lock_wait
        self.on_step = on_step
        self._connection: psycopg2.extensions.connection | None = None
        self._give_up = threading.Event()
        self._cancelled = threading.Event()
        # ``cancel`` (another thread) never uses a connection ``close`` is freeing.
        self._closing = threading.Lock()
        # Bulk mode: whether the load's transaction is open, and the foreign keys it dropped
        # (at its first write: a load of rows that are all known drops and checks nothing).
        self._in_bulk = False
        self._foreign_keys: list[bulk.ForeignKey] | None = None
        self._search_indexes: list[bulk.SearchIndex] = []
        self._uncounted = Uncounted()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection; a bulk load not finished is rolled back, keys included."""
        with self._closing:
            if self._connection is not None:
                with suppress(psycopg2.Error):
                    self._connection.close()
                self._connection = None
        self._in_bulk = False
        self._foreign_keys = None
        self._search_indexes = []

    def write(
        self,
        items: Sequence[Any],
        locations: Sequence[str | None] | None = None,
        digests: Sequence[bytes | None] | None = None,
    ) -> BatchResult:
        """Store ``items`` in order; ``locations`` (same length) say where each came from, and
        ``digests`` (same length, the importer's) are stored with the track of each item that
        is a track without a setlist placement (``known_rows``), in the batch's transaction.

        A caller that must be able to walk away from a write stuck in the network (the crawl's
        pipeline, at shutdown) runs it in a thread of its own choosing.
        """
        started = time.monotonic()
        return self.write_validated(
            validate(items, locations), items, locations, started, digests=digests
        )

    def write_validated(
        self,
        validated: Validated,
        items: Sequence[Any],
        locations: Sequence[str | None] | None = None,
        started: float | None = None,
        digests: Sequence[bytes | None] | None = None,
    ) -> BatchResult:
        """Store ``items`` whose ``validate`` result is ``validated``; ``started`` is when the
        batch's work began (its flush duration), now if not given; ``digests`` as ``write``."""
        if started is None:
            started = time.monotonic()
        if digests is not None:
            for index, record in validated[0]:
                if isinstance(record, TrackRecord):
                    record.row_digest = digests[index]
        prepared, rejections = entries(validated, items, locations)
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

    def give_up(self) -> None:
        """From now on make one attempt per batch: a write retrying a lost database stops at
        once with ``DatabaseUnavailable``. Thread-safe; for a caller that is shutting down."""
        self._give_up.set()

    def cancel(self) -> None:
        """Cancel the statement running now and start nothing more: the write in progress fails
        with ``DatabaseUnavailable`` (or the statement's ``QueryCanceledError``), its
        transaction rolled back, and so does every later one. Thread-safe; for a caller that is
        stopping and cannot wait for a long statement to end (SIGTERM with ``kill -9`` close
        behind). A cancel that reaches the server between two statements is lost: call again."""
        self._cancelled.set()
        self._give_up.set()
        with self._closing:
            connection = self._connection
            if connection is not None and not connection.closed:
                with suppress(psycopg2.Error):
                    connection.cancel()

    def known_rows(self, digests: Sequence[bytes]) -> set[bytes]:
        """``known_rows.known`` in this writer's session. In bulk mode that is the load's
        transaction, the one session that can read the tables the load locks (it sees the load's
        own rows too). Never while a write runs: the caller takes turns with its writes."""
        with self._connect().cursor() as cursor:
            return known_rows.known(cursor, digests)

    def ping(self) -> bool:
        """Whether the database answers now (one attempt, no retries)."""
        try:
            connection = self._connect()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            connection.rollback()
        except TRANSIENT_ERRORS:
            self.close()
            return False
        return True

    def _write_with_retries(
        self, prepared: list[Entry], rejections: list[Rejection]
    ) -> BatchResult:
        deadline = time.monotonic() + self.retry_timeout
        delay = 0.2
        while True:
            try:
                return self._write_splitting(prepared, rejections)
            except TRANSIENT_ERRORS as error:
                self.close()
                if self.bulk:
                    raise DatabaseUnavailable(
                        f"bulk load into {redacted(self.url)} lost its transaction, nothing of it"
                        f" is stored: {error}".strip()
                    ) from error
                out_of_time = time.monotonic() + delay > deadline or self._give_up.is_set()
                if not out_of_time:
                    logger.warning("Database write failed (%s); retrying in %.1fs", error, delay)
                # ``give_up`` ends the wait at once.
                if out_of_time or self._give_up.wait(delay):
                    raise DatabaseUnavailable(
                        f"cannot write to {redacted(self.url)}: {error}".strip()
                    ) from error
                delay = min(delay * 2, 5.0)

    def _write_splitting(self, prepared: list[Entry], rejections: list[Rejection]) -> BatchResult:
        """One transaction; on a data error, halves in order until the bad item is alone."""
        try:
            return self._transaction(prepared, rejections)
        except DATA_ERRORS as error:
            if len(prepared) <= 1:
                if not prepared:
                    raise
                entry = prepared[0]
                message = error.diag.message_primary or str(error).strip()
                reason = f"{RejectionCode.DATABASE_ERROR}: {error.pgcode} {message[:500]}"
                logger.warning("Rejected item the database refused: %s", reason)
                rejection = Rejection(
                    entry.location, RejectionCode.DATABASE_ERROR, reason, payload_of(entry.item)
                )
                return self._transaction([], [*rejections, rejection])
            middle = len(prepared) // 2
            result = self._write_splitting(prepared[:middle], rejections)
            result.add(self._write_splitting(prepared[middle:], []))
            return result

    def _transaction(self, prepared: list[Entry], rejections: list[Rejection]) -> BatchResult:
        connection = self._connect()
        batch = [entry.record for entry in prepared]
        if self.bulk:
            return self._bulk_batch(connection, batch, rejections)
        try:
            with connection.cursor() as cursor:
                result, applied = apply(cursor, batch, rejections, self.origin, self._lock_wait)
            connection.commit()
        except BaseException:
            # A lost connection cannot roll back; the server has already discarded the work.
            with suppress(psycopg2.Error):
                connection.rollback()
            raise
        # Counted only once stored: a rolled-back attempt must not count twice.
        uncounted = Uncounted()
        uncounted.add(result, batch, applied)
        uncounted.publish()
        return result

    def _bulk_batch(
        self,
        connection: psycopg2.extensions.connection,
        batch: list[records.Record],
        rejections: list[Rejection],
    ) -> BatchResult:
        """One batch of a bulk load: a savepoint in the load's transaction, so that bisection
        still rejects one bad item and keeps the rest."""
        if not self._in_bulk:
            raise RuntimeError("a bulk BatchWriter writes only between begin_bulk and finish_bulk")
        with connection.cursor() as cursor:
            if self._foreign_keys is None:
                self._foreign_keys = bulk.drop_foreign_keys(cursor)
            cursor.execute("SAVEPOINT bulk_batch")
            try:
                result, applied = apply(cursor, batch, rejections, self.origin, self._lock_wait)
                # The session's work tables empty at COMMIT, which is far away in bulk mode.
                cursor.execute("TRUNCATE writer_track_updates, writer_credits")
            except BaseException:
                with suppress(psycopg2.Error):
                    cursor.execute("ROLLBACK TO SAVEPOINT bulk_batch")
                raise
            cursor.execute("RELEASE SAVEPOINT bulk_batch")
        self._uncounted.add(result, batch, applied)
        return result

    def stage(self) -> StagedLoad:
        """Staging tables for a whole file in the bulk load's transaction (``staging``)."""
        if not self._in_bulk:
            raise RuntimeError("a bulk BatchWriter stages only between begin_bulk and finish_bulk")
        return StagedLoad(self._connect().cursor(), self._step)

    def write_staged(self, load: StagedLoad) -> BatchResult:
        """Store what ``load`` resolves in SQL (``StagedLoad.insert_simple``) in the load's
        transaction, counted at its COMMIT; its tangled rows are for ``write_validated``."""
        if self._foreign_keys is None:
            self._foreign_keys = bulk.drop_foreign_keys(load.cursor)
        self._search_indexes = bulk.drop_search_indexes(load.cursor)
        result, invalid, conflicts = load.insert_simple(self.origin)
        self._uncounted.result.add(result)
        self._uncounted.invalid.update(invalid)
        self._uncounted.conflicts += conflicts
        return result

    def begin_bulk(self, on_wait: OnLockWait) -> None:
        """Start the bulk load's transaction: take the locks (``on_wait`` is called while other
        sessions hold them). The child tables' foreign keys are dropped by the first write."""
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                bulk.take_locks(cursor, on_wait)
        except BaseException:
            with suppress(psycopg2.Error):
                connection.rollback()
            raise
        self._in_bulk = True
        self._uncounted = Uncounted()

    def finish_bulk(self) -> None:
        """Build the dropped search indexes again, add the dropped foreign keys back,
        validated, and COMMIT the whole load."""
        if not self._in_bulk:
            raise RuntimeError("finish_bulk without begin_bulk")
        connection = self._connect()
        try:
            if self._search_indexes:
                self._step("building the search indexes again")
                with connection.cursor() as cursor:
                    bulk.build_search_indexes(cursor, self._search_indexes)
            if self._foreign_keys is not None:
                self._step("adding the foreign keys back, checking every row")
                with connection.cursor() as cursor:
                    bulk.add_foreign_keys(cursor, self._foreign_keys)
            self._step("committing")
            connection.commit()
        except BaseException:
            with suppress(psycopg2.Error):
                connection.rollback()
            raise
        finally:
            self._in_bulk = False
            self._foreign_keys = None
            self._search_indexes = []
        self._uncounted.publish()
        self._uncounted = Uncounted()

    def _lock_wait(self, seconds: float, holders: int) -> None:
        if self._give_up.is_set():
            raise DatabaseUnavailable(
                f"gave up after waiting {seconds:.0f}s for locks that {holders} other"
                " session(s) hold; nothing of the batch is stored"
            )
        if self.on_lock_wait is not None:
            self.on_lock_wait(seconds, holders)

    def _step(self, text: str) -> None:
        if self.on_step is not None:
            self.on_step(text)

    def _connect(self) -> psycopg2.extensions.connection:
        if self._cancelled.is_set():
            raise DatabaseUnavailable("the writer was cancelled; nothing more is written")
        if self._connection is None or self._connection.closed:
            connection = connect(self.url)
            with connection.cursor() as cursor:
                cursor.execute(SESSION_SETUP)
                if connection.server_version >= CLIENT_CHECK_SINCE:
                    cursor.execute(
                        "SET client_connection_check_interval = %s", (CLIENT_CHECK_INTERVAL,)
                    )
            connection.commit()
            with self._closing:
                self._connection = connection
        return self._connection
