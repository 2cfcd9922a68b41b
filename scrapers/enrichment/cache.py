"""The sources' response cache in PostgreSQL (table ``enrichment_cache``, migration 004).

Koito's lesson: a lookup seen before must cost nothing. Answers are kept per (source, request
key) with a TTL per source, so a re-crawl or a second backfill sends no request for a track or
query it has already asked about. Connections come from a small thread-safe pool because the
clients run in worker threads.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg2.extensions
import psycopg2.pool
from psycopg2.extras import Json


@dataclass(frozen=True)
class CachedAnswer:
    status: int
    body: Any


class ResponseCache:
    def __init__(self, database_url: str, *, max_connections: int = 4) -> None:
        self._pool = psycopg2.pool.ThreadedConnectionPool(
            1, max_connections, database_url, application_name="tracklists-enrichment-cache"
        )
        # The pool raises when exhausted; more threads than connections wait here instead.
        self._slots = threading.BoundedSemaphore(max_connections)

    def get(self, source: str, request_key: str) -> CachedAnswer | None:
        """The fresh answer for this request, or None when absent or expired."""
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT status, body FROM enrichment_cache"
                " WHERE source = %s AND request_key = %s AND expires_at > now()",
                (source, request_key),
            )
            row = cursor.fetchone()
        return CachedAnswer(row[0], row[1]) if row else None

    def put(self, source: str, request_key: str, answer: CachedAnswer, ttl: float) -> None:
        """Store (or replace) the answer; it stays fresh for ``ttl`` seconds."""
        with self._cursor() as cursor:
            cursor.execute(
                "INSERT INTO enrichment_cache (source, request_key, status, body, expires_at)"
                " VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s))"
                " ON CONFLICT (source, request_key) DO UPDATE SET status = EXCLUDED.status,"
                " body = EXCLUDED.body, fetched_at = now(), expires_at = EXCLUDED.expires_at",
                (source, request_key, answer.status, Json(answer.body, dumps=_dumps), ttl),
            )

    def purge_expired(self) -> int:
        """Delete stale answers; returns how many."""
        with self._cursor() as cursor:
            cursor.execute("DELETE FROM enrichment_cache WHERE expires_at <= now()")
            return cursor.rowcount

    def close(self) -> None:
        self._pool.closeall()

    @contextmanager
    def _cursor(self):  # type: ignore[no-untyped-def]
        with self._slots:
            connection: psycopg2.extensions.connection = self._pool.getconn()
            try:
                connection.autocommit = True
                with connection.cursor() as cursor:
                    yield cursor
            finally:
                self._pool.putconn(connection)


def _dumps(value: Any) -> str:
    # PostgreSQL refuses \u0000 in jsonb; an API answer carrying one is stored without it.
    return json.dumps(value, ensure_ascii=False).replace("\\u0000", "")
