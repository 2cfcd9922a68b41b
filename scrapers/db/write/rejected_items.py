"""``rejected_items``: what could not be stored, with its reason and what a user replays it from.

The batch writer records the items it refuses, the importer the rows its readers could not read
(``scrapers/importers/rejections.py``); both write through here.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg2.extensions
from psycopg2.extras import execute_values

from scrapers.db.write.validation import Rejection


def insert_rejections(
    cursor: psycopg2.extensions.cursor, rejections: Sequence[Rejection], origin: str
) -> None:
    """Refused items with their reasons; a replayed batch does not list the same refusal twice."""
    unique = list(
        dict.fromkeys(
            (origin, r.location, r.reason, r.payload.text, r.payload.size, r.payload.sha256)
            for r in rejections
        )
    )
    execute_values(
        cursor,
        """
        INSERT INTO rejected_items
            (origin, location, reason, payload, payload_bytes, payload_sha256)
        SELECT v.origin, v.location, v.reason, v.payload, v.payload_bytes, v.payload_sha256
        FROM (VALUES %s) AS v (n, origin, location, reason, payload, payload_bytes,
                               payload_sha256)
        WHERE NOT EXISTS (
            SELECT 1 FROM rejected_items r
            WHERE r.reason = v.reason AND r.origin = v.origin
              AND r.location IS NOT DISTINCT FROM v.location
              AND r.payload_sha256 = v.payload_sha256)
        ORDER BY v.n
        """,
        [(n, *row) for n, row in enumerate(unique)],
        template="(%s, %s, %s::text, %s, %s, %s::bigint, %s)",
        page_size=len(unique),
    )


def clear_rejections(cursor: psycopg2.extensions.cursor, origin: str) -> int:
    """Forget the rejections recorded under ``origin`` (an earlier run of one file); how many."""
    cursor.execute("DELETE FROM rejected_items WHERE origin = %s", (origin,))
    return cursor.rowcount
