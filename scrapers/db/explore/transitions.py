"""The one SQL definition of a transition, and of a play.

A **transition** is two consecutive *played* rows of one setlist, in page order, both identified
tracks, the second not the first again:

* a played row is neither a "w/" row (``played_with_previous``) nor a mashup part
  (``mashup_parent_row`` set): those are played *with* the row they belong to (co-plays);
* the next played row is found by one index probe (``idx_setlist_tracks_played_in_order``,
  migration 011); an unknown row ("ID - ID", "Artist - ID": ``track_id`` NULL) is a played row
  too, so it breaks the chain: no edge jumps over it;
* a track followed by itself (two rows merged into one track) is no edge.

An edge is counted by distinct setlists and distinct DJs (``setlists.djs``), with the first and
last set date. Everything is computed from ``setlist_tracks`` at query time, so it is exact after
a refresh, a merge by migration 002 (rows re-pointed to the keeper: its counts are the sum), its
rollback or a restore, and a spool replay, with no bookkeeping of its own.
"""

from __future__ import annotations

from enum import StrEnum


class Direction(StrEnum):
    """Which neighbour of an anchor row: the next played row, or the previous one."""

    AFTER = "after"
    BEFORE = "before"


def played(alias: str) -> str:
    """SQL: the row ``alias`` is a played row (a step of the sequence, not a co-play)."""
    return f"(NOT {alias}.played_with_previous AND {alias}.mashup_parent_row IS NULL)"


def attached(alias: str) -> str:
    """SQL: the row ``alias`` is played *with* another (a "w/" row or a mashup part): the rows of
    the partial indexes ``idx_setlist_tracks_attached*`` (migration 011)."""
    return f"({alias}.played_with_previous OR {alias}.mashup_parent_row IS NOT NULL)"


def steps(direction: Direction, anchors: str) -> str:
    """SQL of every transition step from the played rows ``anchors`` selects.

    ``anchors`` is a boolean SQL condition on ``a`` (a ``setlist_tracks`` row), e.g.
    ``a.track_id = ANY(%(ids)s::uuid[])``. The result has ``anchor_id`` (the anchor row's track),
    ``other_id`` (the track of the next played row, or of the previous one for ``BEFORE``) and
    ``setlist_id``: one row per occurrence.
    """
    compare, order = (">", "ASC") if direction is Direction.AFTER else ("<", "DESC")
    return f"""
        SELECT a.track_id AS anchor_id, n.track_id AS other_id, a.setlist_id
        FROM setlist_tracks a
        CROSS JOIN LATERAL (
            SELECT n.track_id FROM setlist_tracks n
            WHERE n.setlist_id = a.setlist_id AND n.row_index {compare} a.row_index
              AND {played("n")}
            ORDER BY n.row_index {order}
            LIMIT 1
        ) n
        WHERE {played("a")} AND ({anchors})
          AND n.track_id IS NOT NULL AND n.track_id <> a.track_id
    """


def steps_in_sets(sets: str) -> str:
    """SQL of every transition step of the setlists ``sets`` selects (a boolean SQL condition on
    ``s``, a ``setlists`` row), with the same columns as ``steps``.

    The same definition read the other way round: each set's played rows in page order, each
    paired with the next (``lead``), instead of one probe per anchor row. For lists over many
    sets (top transitions) one ordered pass is far cheaper than a probe per row; for one track's
    rows ``steps`` is. ``tests/test_explore.py`` checks that the two agree.
    """
    return f"""
        SELECT a.track_id AS anchor_id, a.next_id AS other_id, a.setlist_id
        FROM (
            SELECT r.setlist_id, r.track_id,
                   lead(r.track_id) OVER (PARTITION BY r.setlist_id ORDER BY r.row_index)
                       AS next_id
            FROM setlist_tracks r
            WHERE {played("r")}
              AND r.setlist_id IN (SELECT s.id FROM setlists s WHERE {sets})
        ) a
        WHERE a.track_id IS NOT NULL AND a.next_id IS NOT NULL AND a.next_id <> a.track_id
    """


def tallied(rows: str, keys: str) -> str:
    """SQL: ``rows`` (with ``setlist_id`` and the columns ``keys`` names) grouped by ``keys``,
    counted as ``sets`` (distinct setlists), ``djs`` (distinct DJs of those setlists),
    ``first_played`` and ``last_played`` (their earliest and latest set date).

    Used for a track's plays (``keys`` = ``track_id``): any row that names a track counts as a
    play of it, "w/" rows and mashup parts too. Each setlist is read by its key, row by row: for
    the rows of a few tracks, far cheaper than reading every setlist.
    """
    return f"""
        SELECT {keys}, count(DISTINCT o.setlist_id) AS sets,
               count(DISTINCT dj.name) AS djs, min(s.set_date) AS first_played,
               max(s.set_date) AS last_played
        FROM ({rows}) o
        {_SETLIST_BY_KEY}
        LEFT JOIN LATERAL unnest(s.djs) AS dj (name) ON true
        GROUP BY {keys}
    """


def ranked(rows: str, keys: str, limit: str) -> str:
    """SQL: like ``tallied``, but only the ``limit`` most played groups, most played first.

    Ranked by sets alone first (no setlist read), ties by ``other_id``; the DJs and dates are then
    counted for those groups only, so a hub track's thousands of plays, or the whole catalogue's
    transitions, cost one setlist read per kept occurrence, not per occurrence. ``keys`` ends
    with ``other_id``; ``limit`` is the SQL of the bound (a parameter).
    """
    return f"""
        WITH occurrences AS MATERIALIZED ({rows}),
        kept AS (
            SELECT {keys}, count(*) AS sets
            FROM (SELECT DISTINCT {keys}, setlist_id FROM occurrences) distinct_sets
            GROUP BY {keys}
            ORDER BY sets DESC, other_id LIMIT {limit}
        )
        SELECT {", ".join(f"k.{key.strip()}" for key in keys.split(","))}, k.sets,
               count(DISTINCT dj.name) AS djs, min(s.set_date) AS first_played,
               max(s.set_date) AS last_played
        FROM kept k
        JOIN occurrences o USING ({keys})
        {_SETLIST_BY_KEY}
        LEFT JOIN LATERAL unnest(s.djs) AS dj (name) ON true
        GROUP BY {", ".join(f"k.{key.strip()}" for key in keys.split(","))}, k.sets
        ORDER BY {EDGE_ORDER}
    """


# One setlist by its key (``o.setlist_id``). LIMIT 1 (it is the key) keeps the planner from
# turning the lookups into a join that reads every setlist.
_SETLIST_BY_KEY = (
    "CROSS JOIN LATERAL (SELECT s.set_date, s.djs FROM setlists s"
    " WHERE s.id = o.setlist_id LIMIT 1) s"
)
# Most played first; ties by the most DJs, the latest play, then the track id (stable output).
EDGE_ORDER = "sets DESC, djs DESC, last_played DESC NULLS LAST, other_id"
