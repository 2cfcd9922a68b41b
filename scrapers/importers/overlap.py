"""The importer's one overlap of reading and writing, chosen here and nowhere else.

While the importer reads batch n+2, batch n+1 is validated (in ``validation_pool`` when one is
given, else in the caller's thread) and batch n is in PostgreSQL on the writer's one thread. At
most one batch waits behind the one being written, so memory stays bounded.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from scrapers.db.batch import BatchResult
from scrapers.db.bulk import OnLockWait
from scrapers.db.validation import Validated, validate
from scrapers.db.writer import BatchWriter


class OverlappedWriter:
    """A ``BatchWriter`` on a thread of its own: ``submit`` returns at once with a future."""

    def __init__(self, writer: BatchWriter, validation_pool: Executor | None = None) -> None:
        self.writer = writer
        self.validation_pool = validation_pool
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight: deque[Future[BatchResult]] = deque()

    def __enter__(self) -> OverlappedWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def submit(
        self, items: Sequence[Any], locations: Sequence[str | None] | None = None
    ) -> Future[BatchResult]:
        """Validate ``items`` and store them after every batch submitted before."""
        started = time.monotonic()
        validated: Future[Validated]
        if self.validation_pool is None:
            validated = Future()
            validated.set_result(validate(items, locations))
        else:
            validated = self.validation_pool.submit(validate, items, locations)
        while len(self._in_flight) > 1 or (self._in_flight and self._in_flight[0].done()):
            self._in_flight.popleft().exception()  # wait; errors stay with their future
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-writer")
        future = self._executor.submit(self._store, validated, items, locations, started)
        self._in_flight.append(future)
        return future

    def _store(
        self,
        validated: Future[Validated],
        items: Sequence[Any],
        locations: Sequence[str | None] | None,
        started: float,
    ) -> BatchResult:
        return self.writer.write_validated(validated.result(), items, locations, started)

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
