"""Which tracklists of a source the catalogue already holds, read whole: the crawl's lookup.

``scrapers/crawl/refresh.py`` decides from a ``StoredSetlist`` whether a known tracklist is due
again; this module reads them, one query per listing page.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from contextlib import suppress
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions

from scrapers.db.server.connection import connect, redacted
from scrapers.db.server.migrations import require_current_schema
from scrapers.db.write.locks import OnLockWait, wait_for_locks

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredSetlist:
    """What the catalogue knows of one tracklist, as the policy needs it."""

    source_id: str
    content_hash: str | None
    checked_at: dt.datetime
    set_date: dt.date | None
    created_at: dt.datetime
    has_id_rows: bool


# The stored, wholly read setlists among some source ids, with the database's time.
_KNOWN_SETLISTS = """
    SELECT n.now, s.source_id, s.content_hash, s.checked_at, s.set_date, s.created_at,
           EXISTS (SELECT 1 FROM setlist_tracks t
                   WHERE t.setlist_id = s.id AND (t.is_unknown OR t.is_partial_id))
    FROM (SELECT now()) AS n (now)
    LEFT JOIN setlists s ON s.source = %s AND s.source_id = ANY(%s) AND s.checked_at IS NOT NULL
"""


class KnownSetlists:
    """Looks up which tracklists the catalogue holds, one query per listing page.

    psycopg2 blocks: call ``lookup`` from a worker thread, never the reactor's. A lost database
    makes the lookup answer "none known" after logging it: fetching a page again is safe. A
    schema older than the code raises ``SchemaTooOld`` (checked on each new connection). A
    lookup behind a bulk import's locks waits for them, telling ``on_lock_wait`` each second
    (``locks.wait_for_locks``).
    """

    def __init__(self, url: str, on_lock_wait: OnLockWait | None = None) -> None:
        self.url = url
        self.on_lock_wait = on_lock_wait
        self._connection: psycopg2.extensions.connection | None = None
        self._lock = threading.Lock()

    def lookup(
        self, source: str, source_ids: list[str]
    ) -> tuple[dict[str, StoredSetlist], dt.datetime]:
        """The stored, wholly read setlists among ``source_ids``, and the database's time."""
        with self._lock:
            try:
                return self._query(source, source_ids)
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
                self.close()
                logger.warning(
                    "Could not look up known tracklists on %s (%s); fetching them all",
                    redacted(self.url),
                    str(error).strip(),
                )
                return {}, dt.datetime.now(dt.UTC)

    def _query(
        self, source: str, source_ids: list[str]
    ) -> tuple[dict[str, StoredSetlist], dt.datetime]:
        if self._connection is None or self._connection.closed:
            connection = connect(self.url, autocommit=True)
            try:
                require_current_schema(connection)
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        with self._connection.cursor() as cursor:
            query = (_KNOWN_SETLISTS, (source, source_ids))
            wait_for_locks(cursor, lambda reading: reading.execute(*query), self.on_lock_wait)
            rows = cursor.fetchall()
        now = rows[0][0]
        found = {row[1]: StoredSetlist(*row[1:]) for row in rows if row[1] is not None}
        return found, now

    def close(self) -> None:
        if self._connection is not None:
            with suppress(psycopg2.Error):
                self._connection.close()
            self._connection = None
