"""A read-only connection for the explorer: every statement in a read-only transaction, bounded
by a statement timeout, so a reader can neither change the catalogue nor hold it up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager

import psycopg2.extensions

from scrapers.db.server.connection import connect

DEFAULT_STATEMENT_TIMEOUT_MS = 10_000


@contextmanager
def read_only(
    url: str, statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS
) -> Iterator[psycopg2.extensions.connection]:
    """A connection whose transactions are read-only and whose statements time out; the
    transaction open at the end is rolled back (nothing can have been written)."""
    if not 0 < statement_timeout_ms <= 3_600_000:
        raise ValueError(f"statement timeout must be 1 ms to 1 h, got {statement_timeout_ms}")
    with closing(connect(url)) as connection:
        connection.set_session(readonly=True)
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = %s", (statement_timeout_ms,))
        connection.commit()
        try:
            yield connection
        finally:
            connection.rollback()
