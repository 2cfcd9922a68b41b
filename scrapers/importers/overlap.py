"""The importer's one overlap of reading and writing, chosen here and nowhere else.

While the importer reads batch n+2, batch n+1 is validated (in ``validation_pool`` when one is
given, else in the caller's thread) and batch n is in PostgreSQL on the writer's one thread. At
most one batch waits behind the one being written, so memory stays bounded.

``known`` tells which rows of the next batch are already stored (``known_rows``) before it is
validated: on a connection of its own, so it never waits for a write, except in bulk mode, where
only the load's own session can read the tables it locks and the check takes turns with writes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import suppress
from typing import Any

import psycopg2
import psycopg2.extensions

from scrapers.db.server.connection import connect
from scrapers.db.write import known_rows
from scrapers.db.write.batch import BatchResult
from scrapers.db.write.locks import OnLockWait
from scrapers.db.write.records import TrackRecord
from scrapers.db.write.validation import Validated, validate
from scrapers.db.write.writer import BatchWriter


class OverlappedWriter:
    """A ``BatchWriter`` on a thread of its own: ``submit`` returns at once with a future."""

    def __init__(self, writer: BatchWriter, validation_pool: Executor | None = None) -> None:
        self.writer = writer
        self.validation_pool = validation_pool
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight: deque[Future[BatchResult]] = deque()
        # Bulk mode: a write and a ``known`` check on the load's connection take turns.
        self._turns = threading.Lock()
        self._known_connection: psycopg2.extensions.connection | None = None

    def __enter__(self) -> OverlappedWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def known(self, digests: Sequence[bytes]) -> set[bytes]:
        """Which ``digests`` are rows already stored as a track that still exists."""
        if self.writer.bulk:
            with self._turns:
                return self.writer.known_rows(digests)
        if self._known_connection is None or self._known_connection.closed:
            self._known_connection = connect(self.writer.url, autocommit=True)
        with self._known_connection.cursor() as cursor:
            return known_rows.known(cursor, digests, self.writer.on_lock_wait)

    def submit(
        self,
        items: Sequence[Any],
        locations: Sequence[str | None] | None = None,
        digests: Sequence[bytes | None] | None = None,
        records: Sequence[TrackRecord | None] | None = None,
    ) -> Future[BatchResult]:
        """Validate ``items`` and store them after every batch submitted before; ``digests``
        as ``BatchWriter.write``. ``records`` holds those already validated (in columns): the
        few others are validated here, sending the records to a process would cost more."""
        started = time.monotonic()
        validated: Future[Validated]
        if self.validation_pool is None or records is not None:
            validated = Future()
            validated.set_result(validate(items, locations, records))
        else:
            validated = self.validation_pool.submit(validate, items, locations)
        while len(self._in_flight) > 1 or (self._in_flight and self._in_flight[0].done()):
            self._in_flight.popleft().exception()  # wait; errors stay with their future
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-writer")
        future = self._executor.submit(self._store, validated, items, locations, digests, started)
        self._in_flight.append(future)
        return future

    def _store(
        self,
        validated: Future[Validated],
        items: Sequence[Any],
        locations: Sequence[str | None] | None,
        digests: Sequence[bytes | None] | None,
        started: float,
    ) -> BatchResult:
        checked = validated.result()
        with self._turns:
            return self.writer.write_validated(checked, items, locations, started, digests)

    def begin_bulk(self, on_wait: OnLockWait) -> None:
        """Start a bulk load (``BatchWriter.begin_bulk``), before the first ``submit``."""
        self.writer.begin_bulk(on_wait)

    def finish(self) -> None:
        """Wait for every submitted batch, then end a bulk load (``BatchWriter.finish_bulk``).
        The caller has checked the batches' results: a failed batch must not be committed."""
        self._drain()
        self.writer.finish_bulk()

    def _drain(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._in_flight.clear()

    def close(self) -> None:
        """Wait for submitted batches, then release the thread and the writer's connection."""
        self._drain()
        self.writer.close()
        if self._known_connection is not None:
            with suppress(psycopg2.Error):
                self._known_connection.close()
            self._known_connection = None
