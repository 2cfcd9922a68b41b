"""The SQL that stores a resolved batch (``staging``): new tracks, updates, artists, credits,
lookup rows, and refused items. Each function is one or two statements, set-based whatever the
batch size.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extras import execute_values

from scrapers.db import merge, records
from scrapers.db.validation import Rejection
from scrapers.statuses import EnrichmentStatus

_NEW_TRACK_COLUMNS = (
    "id",
    "title",
    "normalized_title",
    "title_key",
    "isrc",
    "spotify_id",
    "is_remix",
    *records.OVERWRITE_COLUMNS,
    *records.FILL_ONLY_COLUMNS,
    "metadata",
    "enrichment_status",
)


def write_tracks(cursor: psycopg2.extensions.cursor) -> None:
    """New tracks, then the stored ones the batch changes, then their credits, from the
    resolved staging tables: each track's items folded by the merge rule, in item order."""
    cursor.execute(
        sql.SQL(
            """
            WITH v AS MATERIALIZED (
                SELECT i.track_id AS id, {folded} FROM writer_items i GROUP BY i.track_id
            ), added AS (
                INSERT INTO tracks ({columns})
                SELECT b.id, s.title, s.normalized_title, b.title_key, b.isrc, b.spotify_id,
                       s.is_remix, {values}, coalesce(v.metadata, '{{}}'),
                       coalesce(v.enrichment_status, %(pending)s)
                FROM writer_tracks b
                JOIN writer_items s ON s.n = b.source_n
                JOIN v ON v.id = b.id
                WHERE b.is_new
                ORDER BY b.ord
            )
            UPDATE tracks AS t SET {assignments}
            FROM (
                SELECT v.*, b.isrc, b.spotify_id, b.title_key
                FROM v JOIN writer_tracks b ON b.id = v.id AND NOT b.is_new
            ) AS u
            WHERE t.id = u.id AND {changes}
            """
        ).format(
            folded=merge.folded("i", "n"),
            columns=sql.SQL(", ").join(map(sql.Identifier, _NEW_TRACK_COLUMNS)),
            values=sql.SQL(", ").join(
                sql.SQL("v.{}").format(sql.Identifier(c))
                for c in (*records.OVERWRITE_COLUMNS, *records.FILL_ONLY_COLUMNS)
            ),
            assignments=merge.assignments(),
            changes=merge.changes(),
        ),
        {"pending": EnrichmentStatus.PENDING},
    )
    _write_credits(cursor)


def _write_credits(cursor: psycopg2.extensions.cursor) -> None:
    """Artists, then their roles, for each track the batch created or gave its title key. The
    batch holds the artists' locks, so an artist missing now stays missing until commit: no
    ON CONFLICT round of speculative inserts for artists."""
    cursor.execute(
        """
        WITH credit AS MATERIALIZED (
            SELECT b.id AS track_id, c.*, b.ord FROM writer_tracks b
            JOIN writer_item_credits c ON c.n = b.source_n
        ), artist AS MATERIALIZED (
            -- The first spelling of a new artist names it. LATERAL keeps the per-key index
            -- lookups a join could turn into a scan of every artist.
            SELECT DISTINCT ON (c.artist_key) c.artist_key, c.name, c.new_artist_id, a.id
            FROM credit c
            LEFT JOIN LATERAL (
                SELECT id FROM artists WHERE normalized_name = c.artist_key LIMIT 1
            ) AS a ON true
            ORDER BY c.artist_key, c.ord, c.ordinality
        ), added AS (
            INSERT INTO artists (id, normalized_name, name)
            SELECT new_artist_id, artist_key, name FROM artist WHERE id IS NULL
        )
        INSERT INTO track_artists (track_id, artist_id, role, position)
        SELECT c.track_id, coalesce(a.id, a.new_artist_id), c.role,
               row_number() OVER (PARTITION BY c.track_id, c.role ORDER BY c.ordinality) - 1
        FROM credit c JOIN artist a USING (artist_key)
        ORDER BY c.ord, c.ordinality
        ON CONFLICT DO NOTHING
        """
    )


def write_lookup(cursor: psycopg2.extensions.cursor) -> None:
    """Remember each raw spelling seen for the first time (the batch read every stored
    spelling it uses, under the title-key locks, so these cannot exist yet)."""
    cursor.execute(
        "INSERT INTO track_lookup (raw_artist, raw_title, track_id)"
        " SELECT raw_artist, raw_title, track_id FROM writer_spellings WHERE is_new"
    )


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
