"""The catalogue as the web explorer reads it: pooled connections, one read-only transaction per
request, every statement bounded by a timeout.

A request borrows a connection (waiting at most ``BORROW_TIMEOUT`` seconds when all are busy),
runs ``SET TRANSACTION READ ONLY`` and ``SET LOCAL statement_timeout`` first, and rolls back at the
end: a page can neither change the catalogue nor hold it up. A connection that broke (the server
restarted) is dropped instead of going back to the pool. The borrowing blocks, so the dependency
is a plain generator: FastAPI runs it in its threadpool, like the sync endpoints that use it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psycopg2
import psycopg2.extensions
from fastapi import Request

from scrapers.db.server.connection import connect

BORROW_TIMEOUT = 10.0


class CatalogueBusyError(RuntimeError):
    """Every database connection stayed busy for ``BORROW_TIMEOUT`` seconds."""


class ReadOnlyCatalogue:
    """At most ``size`` connections to ``url``, lent one read-only transaction at a time."""

    def __init__(self, url: str, *, size: int, statement_timeout_ms: int) -> None:
        self.url = url
        self.statement_timeout_ms = statement_timeout_ms
        self._slots = threading.BoundedSemaphore(size)
        self._idle: queue.LifoQueue[psycopg2.extensions.connection] = queue.LifoQueue()

    @contextmanager
    def transaction(self) -> Iterator[psycopg2.extensions.connection]:
        """A connection inside a fresh read-only transaction with the statement timeout."""
        if not self._slots.acquire(timeout=BORROW_TIMEOUT):
            raise CatalogueBusyError("every database connection is busy")
        connection = None
        try:
            connection = self._idle_connection() or connect(self.url)
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION READ ONLY")
                cursor.execute("SET LOCAL statement_timeout = %s", (self.statement_timeout_ms,))
            yield connection
        finally:
            if connection is not None:
                self._give_back(connection)
            self._slots.release()

    def close(self) -> None:
        while True:
            try:
                connection = self._idle.get_nowait()
            except queue.Empty:
                return
            connection.close()

    def _idle_connection(self) -> psycopg2.extensions.connection | None:
        with suppress(queue.Empty):
            return self._idle.get_nowait()
        return None

    def _give_back(self, connection: psycopg2.extensions.connection) -> None:
        try:
            connection.rollback()
        except psycopg2.Error:
            connection.close()
        if connection.closed:
            return  # broken: the next request connects afresh
        self._idle.put(connection)


def catalogue_transaction(request: Request) -> Iterator[psycopg2.extensions.connection]:
    """FastAPI dependency: the request's read-only transaction (rolled back when it ends)."""
    catalogue: ReadOnlyCatalogue = request.app.state.catalogue
    with catalogue.transaction() as connection:
        yield connection
