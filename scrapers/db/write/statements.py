"""The SQL of a batch's tracks: candidates, new rows, updates, artists, credits, lookup rows.
Each function is one or two statements, set-based whatever the batch size.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from scrapers.db.write import merge, merge_sql, records
from scrapers.db.write.arrays import text_array
from scrapers.db.write.copy import copy_rows
from scrapers.db.write.ids import new_ids
from scrapers.db.write.records import TrackRecord
from scrapers.db.write.resolution import Resolution, Track
from scrapers.statuses import EnrichmentStatus

# The writer's statements are many short index lookups. The planner cannot know that each
# LATERAL lookup finds a row or two, and its estimate (millions of rows) crosses
# ``jit_above_cost``: compiling the query then took 0.5 s of a 0.57 s candidate fetch.
SESSION_SETUP = sql.SQL("""
SET jit = off;
CREATE TEMP TABLE IF NOT EXISTS writer_track_updates (id uuid, {columns}) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS writer_credits (
    track_id uuid, artist_id uuid, role text, position smallint
) ON COMMIT DELETE ROWS;
""").format(columns=merge_sql.incoming_columns())
# A track's values, in the order the new rows and the updates take them.
_VALUE_COLUMNS = (*records.OVERWRITE_COLUMNS, *records.FILL_ONLY_COLUMNS)
_NEW_TRACK_COLUMNS = (
    "id",
    "title",
    "normalized_title",
    "title_key",
    "isrc",
    "spotify_id",
    "is_remix",
    *_VALUE_COLUMNS,
    "metadata",
    "enrichment_status",
)
_UPDATE_COLUMNS = ("id", *merge.COLUMN_TYPES)
_CREDIT_COLUMNS = ("track_id", "artist_id", "role", "position")


def fetch_candidates(
    cursor: psycopg2.extensions.cursor, tracks: list[TrackRecord], resolution: Resolution
) -> None:
    """Every stored track any item of the batch could match, in one round trip."""
    if not tracks:
        return
    isrcs = sorted({r.isrc for r in tracks if r.isrc})
    spotify_ids = sorted({r.spotify_id for r in tracks if r.spotify_id})
    title_keys = sorted({r.title_key for r in tracks})
    spellings = sorted({(r.artist, r.title) for r in tracks})
    cursor.execute(
        """
        WITH spelling AS MATERIALIZED (
            -- LATERAL … LIMIT keeps these per-key index lookups: a join here would let the
            -- planner hash the whole table, a cost that grows with the catalogue.
            SELECT s.artist AS raw_artist, s.title AS raw_title, l.track_id
            FROM unnest(%(artists)s::text[], %(titles)s::text[]) AS s (artist, title)
            CROSS JOIN LATERAL (
                SELECT track_id FROM track_lookup
                WHERE raw_artist = s.artist AND raw_title = s.title LIMIT 1
            ) AS l
        ), candidate AS (
            SELECT id FROM tracks WHERE isrc = ANY(%(isrcs)s::text[])
            UNION SELECT id FROM tracks WHERE spotify_id = ANY(%(spotify_ids)s::text[])
            UNION SELECT k.id FROM unnest(%(title_keys)s::text[]) AS key (title_key)
                  CROSS JOIN LATERAL (
                      SELECT id FROM tracks WHERE title_key = key.title_key LIMIT 1000
                  ) AS k
            UNION SELECT track_id FROM spelling
        )
        SELECT t.id::text, t.isrc, t.spotify_id, t.title_key, NULL, NULL, t.created_at
        FROM candidate c CROSS JOIN LATERAL (
            SELECT * FROM tracks WHERE tracks.id = c.id LIMIT 1
        ) AS t
        UNION ALL
        SELECT track_id::text, NULL, NULL, NULL, raw_artist, raw_title, NULL FROM spelling
        ORDER BY 5 NULLS FIRST, 7, 1
        """,
        {
            "artists": text_array(a for a, _ in spellings),
            "titles": text_array(t for _, t in spellings),
            "isrcs": text_array(isrcs),
            "spotify_ids": text_array(spotify_ids),
            "title_keys": text_array(title_keys),
        },
    )
    # Oldest first: the title tier adopts the oldest track that does not contradict the item.
    for track_id, isrc, spotify_id, title_key, raw_artist, raw_title, _ in cursor.fetchall():
        if raw_artist is None:
            resolution.add(Track(track_id, isrc, spotify_id, title_key))
        elif track_id in resolution.tracks:
            resolution.by_spelling[(raw_artist, raw_title)] = resolution.tracks[track_id]


class _JsonTexts:
    """``json.dumps`` of a batch's metadata, once per distinct value of text fields: an import's
    rows nearly all carry the same (``{"source": "import:csv"}``), and serialising it again for
    each row was a tenth of the writer's Python time."""

    def __init__(self) -> None:
        self._texts: dict[tuple[tuple[str, Any], ...], str] = {}

    def __call__(self, metadata: dict[str, Any]) -> str:
        try:
            key = tuple(metadata.items())
            return self._texts[key]
        except TypeError:  # a nested value: not worth remembering
            return json.dumps(metadata)
        except KeyError:
            pass
        text = json.dumps(metadata)
        # Only text values: a key equal to a remembered one then has the same JSON (True == 1
        # and 1 == 1.0 would not).
        if all(isinstance(value, str) for value in metadata.values()):
            self._texts[key] = text
        return text


def write_tracks(cursor: psycopg2.extensions.cursor, resolution: Resolution) -> None:
    new_rows, updates, names, credits = [], [], {}, []
    json_text = _JsonTexts()
    for track in resolution.tracks.values():
        if track.is_new:
            record = track.source
            assert record is not None
            new_rows.append(
                (
                    track.id,
                    record.title,
                    record.normalized_title,
                    track.title_key,
                    track.isrc,
                    track.spotify_id,
                    record.is_remix,
                    *map(track.values.get, _VALUE_COLUMNS),
                    json_text(track.metadata),
                    track.enrichment_status or EnrichmentStatus.PENDING,
                )
            )
        elif track.changed:
            updates.append(
                (
                    track.id,
                    *map(track.values.get, _VALUE_COLUMNS),
                    track.isrc,
                    track.spotify_id,
                    track.title_key,
                    json_text(track.metadata),
                    track.enrichment_status,
                )
            )
        if track.source is not None:
            positions: dict[str, int] = {}
            source = track.source
            for (name, role), key in zip(source.credits, source.artist_keys(), strict=True):
                names.setdefault(key, name)
                position = positions.get(role, 0)
                credits.append((track.id, key, role, position))
                positions[role] = position + 1
    copy_rows(cursor, "tracks", _NEW_TRACK_COLUMNS, new_rows)
    if updates:
        copy_rows(cursor, "writer_track_updates", _UPDATE_COLUMNS, updates)
        cursor.execute(
            sql.SQL(
                "UPDATE tracks AS t SET {} FROM writer_track_updates AS u WHERE t.id = u.id AND {}"
            ).format(merge_sql.assignments(), merge_sql.changes())
        )
    if names:
        write_credits(
            cursor, names, credits, {t.id for t in resolution.tracks.values() if t.is_new}
        )


def write_credits(
    cursor: psycopg2.extensions.cursor,
    names: Mapping[str, str],
    credits: list[tuple[str, str, str, int]],
    new_track_ids: set[str],
) -> None:
    """Artists, then their roles. The batch holds the artists' locks, so an artist missing now
    stays missing until commit: plain COPY, no ON CONFLICT round of speculative inserts."""
    cursor.execute(
        "SELECT normalized_name, id::text FROM artists WHERE normalized_name = ANY(%s::text[])",
        (text_array(sorted(names)),),
    )
    artist_ids = dict(cursor.fetchall())
    keys = [key for key in sorted(names) if key not in artist_ids]
    missing = [
        (artist_id, key, names[key])
        for artist_id, key in zip(new_ids(len(keys)), keys, strict=True)
    ]
    copy_rows(cursor, "artists", ("id", "normalized_name", "name"), missing)
    artist_ids.update((key, artist_id) for artist_id, key, _ in missing)
    rows = [
        (track_id, artist_ids[key], role, position) for track_id, key, role, position in credits
    ]
    # A new track has no credits yet; a pre-existing one given a title key may have some.
    copy_rows(cursor, "track_artists", _CREDIT_COLUMNS, [r for r in rows if r[0] in new_track_ids])
    existing = [r for r in rows if r[0] not in new_track_ids]
    if existing:
        copy_rows(cursor, "writer_credits", _CREDIT_COLUMNS, existing)
        cursor.execute(
            "INSERT INTO track_artists (track_id, artist_id, role, position)"
            " SELECT track_id, artist_id, role, position FROM writer_credits"
            " ON CONFLICT DO NOTHING"
        )


def write_lookup(
    cursor: psycopg2.extensions.cursor, spellings: Mapping[tuple[str, str], str]
) -> None:
    """Remember each raw spelling seen for the first time (the batch fetched every stored
    spelling it uses, under the title-key locks, so these cannot exist yet)."""
    copy_rows(
        cursor,
        "track_lookup",
        ("raw_artist", "raw_title", "track_id"),
        [(artist, title, track_id) for (artist, title), track_id in spellings.items()],
    )
