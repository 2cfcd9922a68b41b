"""Top tracks and top transitions, over all setlists or a ``SetScope`` of them.

These read every played row in scope (no index narrows "all of them"), so they take seconds on a
large catalogue where the per-track queries take milliseconds; a scope makes them cheaper.
"""

from __future__ import annotations

from typing import Any

from scrapers.db.explore.refs import load_refs
from scrapers.db.explore.results import Plays, TrackCount, Transition
from scrapers.db.explore.setlists import SetScope
from scrapers.db.explore.tracks import DEFAULT_LIMIT, check_limit
from scrapers.db.explore.transitions import ranked, steps_in_sets


def top_tracks(
    connection: Any, scope: SetScope | None = None, limit: int = DEFAULT_LIMIT
) -> tuple[TrackCount, ...]:
    """The ``limit`` tracks played in the most setlists of ``scope``."""
    check_limit(limit)
    condition, parameters = (scope or SetScope()).condition()
    rows = f"""
        SELECT r.setlist_id, r.track_id AS other_id
        FROM setlist_tracks r JOIN setlists s ON s.id = r.setlist_id
        WHERE r.track_id IS NOT NULL AND {condition}
    """
    with connection.cursor() as cursor:
        cursor.execute(ranked(rows, "other_id", "%(limit)s"), {**parameters, "limit": limit})
        found = [(str(track), Plays(*counts)) for track, *counts in cursor.fetchall()]
        refs = load_refs(cursor, [track for track, _ in found])
    return tuple(TrackCount(refs[track], plays) for track, plays in found if track in refs)


def top_transitions(
    connection: Any, scope: SetScope | None = None, limit: int = DEFAULT_LIMIT
) -> tuple[Transition, ...]:
    """The ``limit`` transitions played in the most setlists of ``scope``."""
    check_limit(limit)
    condition, parameters = (scope or SetScope()).condition()
    with connection.cursor() as cursor:
        cursor.execute(
            ranked(steps_in_sets(condition), "anchor_id, other_id", "%(limit)s"),
            {**parameters, "limit": limit},
        )
        found = [(str(a), str(b), Plays(*counts)) for a, b, *counts in cursor.fetchall()]
        refs = load_refs(cursor, [track for a, b, _ in found for track in (a, b)])
    return tuple(
        Transition(refs[a], refs[b], plays) for a, b, plays in found if a in refs and b in refs
    )
