"""A DJ: their setlists, their most played tracks, their most repeated transitions.

A DJ is a name in ``setlists.djs`` (as the site writes it): ``find_djs`` resolves a typed name,
exact first (any case), then by similarity.
"""

from __future__ import annotations

from typing import Any

from scrapers.db.explore.results import DjCount, DjDetail
from scrapers.db.explore.setlists import SUMMARY_COLUMNS, SetScope, summary
from scrapers.db.explore.top import top_tracks, top_transitions
from scrapers.db.explore.tracks import DEFAULT_LIMIT, check_limit

MAX_NAME_LENGTH = 200
# Trigram similarity (0..1) a DJ name needs to be offered for a typed one.
NAME_SIMILARITY = 0.3


def find_djs(connection: Any, name: str, limit: int = DEFAULT_LIMIT) -> tuple[DjCount, ...]:
    """DJ names like ``name``, with their number of setlists: the exact name (any case) first,
    then the most similar."""
    check_limit(limit)
    text = " ".join(name.split())
    if not 0 < len(text) <= MAX_NAME_LENGTH:
        raise ValueError(f"a DJ name must be 1 to {MAX_NAME_LENGTH} characters")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT dj.name, count(*) AS sets
            FROM setlists s CROSS JOIN LATERAL unnest(s.djs) AS dj (name)
            WHERE lower(dj.name) = lower(%(name)s) OR similarity(dj.name, %(name)s) >= %(min)s
            GROUP BY dj.name
            ORDER BY lower(dj.name) = lower(%(name)s) DESC, similarity(dj.name, %(name)s) DESC,
                     sets DESC, dj.name
            LIMIT %(limit)s
            """,
            {"name": text, "min": NAME_SIMILARITY, "limit": limit},
        )
        return tuple(DjCount(found, sets) for found, sets in cursor.fetchall())


def dj_detail(connection: Any, name: str, limit: int = DEFAULT_LIMIT) -> DjDetail | None:
    """The DJ named exactly ``name``: latest setlists, most played tracks and transitions (each
    at most ``limit``); None when no setlist names them."""
    check_limit(limit)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {SUMMARY_COLUMNS} FROM setlists s WHERE s.djs @> ARRAY[%s]::text[] "
            "ORDER BY s.set_date DESC NULLS LAST, s.title LIMIT %s",
            (name, limit),
        )
        sets = tuple(summary(row) for row in cursor.fetchall())
    if not sets:
        return None
    scope = SetScope(dj=name)
    return DjDetail(
        name=name,
        sets=sets,
        top_tracks=top_tracks(connection, scope, limit),
        top_transitions=top_transitions(connection, scope, limit),
    )
