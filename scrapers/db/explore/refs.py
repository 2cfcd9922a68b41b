"""Tracks as lists show them (``TrackRef``), loaded by id in one query.

``tracks`` has no artist column: a track's artist is the artist text of the spelling it was first
stored under (``track_lookup``: the spelling whose title is the track's title, oldest first), as
the site or the import wrote it, "A & B ft. C"; a track without a stored spelling shows its
primary credits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from scrapers.db.explore.results import TrackRef

# SQL: the columns of a TrackRef for the track aliased ``t``, in TrackRef's field order.
TRACK_REF_COLUMNS = """
    t.id::text,
    COALESCE(
        (SELECT l.raw_artist FROM track_lookup l WHERE l.track_id = t.id
         ORDER BY l.raw_title = t.title DESC, l.created_at, l.raw_artist LIMIT 1),
        (SELECT string_agg(a.name, ', ' ORDER BY c.position, a.name)
         FROM track_artists c JOIN artists a ON a.id = c.artist_id
         WHERE c.track_id = t.id AND c.role = 'primary'),
        ''),
    t.title, t.isrc, t.spotify_id, t.musicbrainz_id::text, t.duration_ms, t.bpm::float8, t.key
"""
TRACK_REF_WIDTH = 9


def track_ref(row: tuple[Any, ...]) -> TrackRef:
    """A TrackRef from the first ``TRACK_REF_WIDTH`` columns of ``row``."""
    return TrackRef(*row[:TRACK_REF_WIDTH])


def load_refs(cursor: Any, ids: Iterable[str]) -> dict[str, TrackRef]:
    """TrackRefs of ``ids`` (absent ids are left out), by id."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    cursor.execute(
        f"SELECT {TRACK_REF_COLUMNS} FROM tracks t WHERE t.id = ANY(%s::uuid[])", (wanted,)
    )
    return {row[0]: track_ref(row) for row in cursor.fetchall()}
