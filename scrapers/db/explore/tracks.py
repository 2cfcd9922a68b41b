"""One track: what DJs play after it, before it and with it, its plays, versions and DJs.

Every list is bounded (``limit``, at most ``MAX_LIMIT``) and sorted most played first.
"""

from __future__ import annotations

from typing import Any

from scrapers import identity
from scrapers.db.explore.refs import TRACK_REF_COLUMNS, TRACK_REF_WIDTH, load_refs, track_ref
from scrapers.db.explore.results import (
    Credit,
    DjCount,
    Neighbour,
    Neighbourhood,
    Plays,
    TrackCount,
    TrackDetail,
    TrackRef,
)
from scrapers.db.explore.transitions import (
    Direction,
    attached,
    played,
    ranked,
    steps,
    tallied,
)

DEFAULT_LIMIT = 20
MAX_LIMIT = 200
MAX_IDS = 1000
# Other versions are looked for among the tracks of the track's primary artists, at most this many.
MAX_VERSION_CANDIDATES = 5000
NO_PLAYS = Plays(0, 0, None, None)


def check_limit(limit: int) -> int:
    """``limit`` if it is a sensible list size; ValueError otherwise (callers say it to users)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit!r}")
    return limit


def neighbourhood(connection: Any, track_id: str, limit: int = DEFAULT_LIMIT) -> Neighbourhood:
    """The ``limit`` tracks most played after ``track_id``, before it, and with it."""
    check_limit(limit)
    with connection.cursor() as cursor:
        followers = _edges(cursor, Direction.AFTER, track_id, limit)
        predecessors = _edges(cursor, Direction.BEFORE, track_id, limit)
        together = _coplays(cursor, track_id, limit)
        refs = load_refs(cursor, [other for other, _ in followers + predecessors + together])
    return Neighbourhood(
        followers=_neighbours(followers, refs),
        predecessors=_neighbours(predecessors, refs),
        with_tracks=_neighbours(together, refs),
    )


def track_by_id(connection: Any, track_id: str) -> TrackRef | None:
    """The track with id ``track_id``, or None."""
    with connection.cursor() as cursor:
        return load_refs(cursor, [track_id]).get(track_id)


def track_detail(connection: Any, track_id: str, limit: int = DEFAULT_LIMIT) -> TrackDetail | None:
    """Everything the explorer shows about one track; None when no track has that id."""
    check_limit(limit)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {TRACK_REF_COLUMNS}, t.version, t.label, t.genre, t.release_date "
            "FROM tracks t WHERE t.id = %s::uuid",
            (track_id,),
        )
        row = cursor.fetchone()
        if row is None:
            return None
        track = track_ref(row)
        version, label, genre, release_date = row[TRACK_REF_WIDTH:]
        cursor.execute(
            "SELECT a.name, c.role FROM track_artists c JOIN artists a ON a.id = c.artist_id "
            "WHERE c.track_id = %s::uuid ORDER BY c.role, c.position, a.name",
            (track_id,),
        )
        credits = tuple(Credit(name, role) for name, role in cursor.fetchall())
        plays = track_plays(cursor, [track_id]).get(track_id, NO_PLAYS)
        others = _other_versions(cursor, track_id, track.title, limit)
        top_djs = _top_djs(cursor, track_id, limit)
    return TrackDetail(
        track=track,
        version=version,
        label=label,
        genre=genre,
        release_date=release_date,
        credits=credits,
        other_versions=others,
        plays=plays,
        neighbourhood=neighbourhood(connection, track_id, limit),
        top_djs=top_djs,
    )


def plays_of(connection: Any, track_ids: list[str]) -> dict[str, Plays]:
    """Plays of each of ``track_ids`` (at most ``MAX_IDS``; a graph's node sizes), by id; a track
    never played is absent."""
    if len(set(track_ids)) > MAX_IDS:
        raise ValueError(f"at most {MAX_IDS} tracks at once, got {len(set(track_ids))}")
    with connection.cursor() as cursor:
        return track_plays(cursor, track_ids)


def track_plays(cursor: Any, track_ids: list[str]) -> dict[str, Plays]:
    """Plays of each of ``track_ids`` (absent when never played)."""
    if not track_ids:
        return {}
    rows = "SELECT setlist_id, track_id FROM setlist_tracks WHERE track_id = ANY(%s::uuid[])"
    cursor.execute(tallied(rows, "track_id"), (sorted(set(track_ids)),))
    return {str(track): Plays(*counts) for track, *counts in cursor.fetchall()}


def _edges(cursor: Any, direction: Direction, track_id: str, limit: int) -> list[tuple[str, Plays]]:
    occurrences = steps(direction, "a.track_id = %(track)s::uuid")
    cursor.execute(
        ranked(occurrences, "anchor_id, other_id", "%(limit)s"),
        {"track": track_id, "limit": limit},
    )
    return [(str(other), Plays(*counts)) for _, other, *counts in cursor.fetchall()]


# The rows played with one row (its group): the played row it belongs to (its anchor: a "w/"
# row's nearest played row above it, a mashup part's parent), and the rows after the anchor up to
# the next played row, "w/" rows and that anchor's parts (parts follow their parent on the page).
# A played row of the track anchors a group only when the row right after it is attached to it,
# one probe of the small index of attached rows; the track's own attached rows find theirs.
_COPLAYS = f"""
    WITH anchors AS (
        SELECT a.setlist_id, a.row_index AS anchor_row
        FROM setlist_tracks a
        WHERE a.track_id = %(track)s::uuid AND {played("a")}
          AND EXISTS (SELECT 1 FROM setlist_tracks w
                      WHERE w.setlist_id = a.setlist_id AND w.row_index = a.row_index + 1
                        AND {attached("w")})
        UNION
        SELECT r.setlist_id, coalesce(r.mashup_parent_row, (
                   SELECT p.row_index FROM setlist_tracks p
                   WHERE p.setlist_id = r.setlist_id AND p.row_index < r.row_index
                     AND {played("p")}
                   ORDER BY p.row_index DESC LIMIT 1))
        FROM setlist_tracks r
        WHERE r.track_id = %(track)s::uuid AND {attached("r")}
    ),
    together AS (
        SELECT DISTINCT m.setlist_id, g.track_id
        FROM anchors m
        LEFT JOIN LATERAL (
            SELECT n.row_index FROM setlist_tracks n
            WHERE n.setlist_id = m.setlist_id AND n.row_index > m.anchor_row AND {played("n")}
            ORDER BY n.row_index LIMIT 1
        ) next_played ON true
        JOIN setlist_tracks g ON g.setlist_id = m.setlist_id
            AND g.row_index >= m.anchor_row
            AND g.row_index < coalesce(next_played.row_index, 2147483647)
            AND (g.row_index = m.anchor_row OR g.played_with_previous
                 OR g.mashup_parent_row = m.anchor_row)
        WHERE m.anchor_row IS NOT NULL
          AND g.track_id IS NOT NULL AND g.track_id <> %(track)s::uuid
    )
"""


def _coplays(cursor: Any, track_id: str, limit: int) -> list[tuple[str, Plays]]:
    rows = f"{_COPLAYS} SELECT setlist_id, track_id AS other_id FROM together"
    cursor.execute(ranked(rows, "other_id", "%(limit)s"), {"track": track_id, "limit": limit})
    return [(str(other), Plays(*counts)) for other, *counts in cursor.fetchall()]


def _neighbours(edges: list[tuple[str, Plays]], refs: dict[str, Any]) -> tuple[Neighbour, ...]:
    return tuple(Neighbour(refs[other], plays) for other, plays in edges if other in refs)


def _other_versions(cursor: Any, track_id: str, title: str, limit: int) -> tuple[TrackCount, ...]:
    """Tracks of the same primary artist whose title is the same without its version."""
    cursor.execute(
        """
        SELECT DISTINCT t.id::text, t.title
        FROM track_artists mine
        JOIN track_artists theirs ON theirs.artist_id = mine.artist_id
        JOIN tracks t ON t.id = theirs.track_id
        WHERE mine.track_id = %(track)s::uuid AND mine.role = 'primary'
          AND theirs.role = 'primary' AND t.id <> %(track)s::uuid
        LIMIT %(cap)s
        """,
        {"track": track_id, "cap": MAX_VERSION_CANDIDATES},
    )
    family = identity.title_family(title)
    ids = [
        other
        for other, other_title in cursor.fetchall()
        if identity.title_family(other_title) == family
    ]
    plays = track_plays(cursor, ids)
    refs = load_refs(cursor, ids)
    ranked = sorted(ids, key=lambda other: (-plays.get(other, NO_PLAYS).sets, refs[other].title))
    return tuple(TrackCount(refs[other], plays.get(other, NO_PLAYS)) for other in ranked[:limit])


def _top_djs(cursor: Any, track_id: str, limit: int) -> tuple[DjCount, ...]:
    cursor.execute(
        """
        SELECT dj.name, count(DISTINCT r.setlist_id) AS sets
        FROM setlist_tracks r
        JOIN setlists s ON s.id = r.setlist_id
        CROSS JOIN LATERAL unnest(s.djs) AS dj (name)
        WHERE r.track_id = %s::uuid
        GROUP BY dj.name
        ORDER BY sets DESC, dj.name
        LIMIT %s
        """,
        (track_id, limit),
    )
    return tuple(DjCount(name, sets) for name, sets in cursor.fetchall())
