"""``rejected_items`` rows for what a reader could not read (the writer records the rest)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2.extensions

from scrapers import metrics
from scrapers.db.server.connection import connect
from scrapers.db.write.rejected_items import clear_rejections, insert_rejections
from scrapers.db.write.validation import Rejection
from scrapers.importers.source import SourceRow
from scrapers.metrics import RowOutcome
from scrapers.statuses import RejectionCode

logger = logging.getLogger("scrapers.importers")

# Unreadable rows logged one by one per file; the rest are counted in the summary.
LOGGED_REJECTIONS = 20


class RejectionLog:
    """``rejected_items`` rows for what a reader could not read (the writer logs the rest)."""

    def __init__(self, url: str | None, origin: str) -> None:
        self.url = url
        self.origin = origin
        self._connection: psycopg2.extensions.connection | None = None
        self._logged = 0

    def clear(self) -> None:
        """Forget the rejections of an earlier run of this file: this run records them again."""
        if self.url is None:
            return
        with self._cursor() as cursor:
            cleared = clear_rejections(cursor, self.origin)
        if cleared:
            logger.info("%s: cleared %d earlier rejections", self.origin, cleared)

    def store(self, rows: list[SourceRow]) -> None:
        if not rows:
            return
        metrics.IMPORT_ROWS.labels(RowOutcome.UNREADABLE).inc(len(rows))
        self._log(rows)
        if self.url is None:
            return
        code = RejectionCode.UNREADABLE
        refused = []
        for row in rows:
            assert row.payload is not None
            refused.append(Rejection(row.location, code, f"{code}: {row.error}", row.payload))
        with self._cursor() as cursor:
            insert_rejections(cursor, refused, self.origin)
        metrics.ITEMS_REJECTED.labels(code).inc(len(rows))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _log(self, rows: list[SourceRow]) -> None:
        for row in rows[: max(0, LOGGED_REJECTIONS - self._logged)]:
            logger.warning("%s: rejected: %s", row.location, row.error)
        if self._logged < LOGGED_REJECTIONS < self._logged + len(rows):
            logger.warning("%s: further unreadable rows are counted, not logged", self.origin)
        self._logged += len(rows)

    @contextmanager
    def _cursor(self) -> Iterator[psycopg2.extensions.cursor]:
        """A cursor in its own committed transaction."""
        assert self.url is not None
        if self._connection is None:
            self._connection = connect(self.url)
        with self._connection, self._connection.cursor() as cursor:
            yield cursor
