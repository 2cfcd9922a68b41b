"""The set builder: a path from track A to track B through transitions DJs really played.

Fewest steps first, then the most played edges (the greatest sum of setlists over its steps).
A bidirectional breadth-first search, one SQL query per level (the smaller side grows): every
transition out of (or into) a whole level at once, from the same definition as everywhere else
(``transitions.steps``). Optional rules per step (``MixRules``): a BPM window and Camelot
neighbours, applied where both tracks have the value.

Once the two sides meet, the shortest length L is known and every edge of every shortest path
has been read (an edge u→v on a path of length L has u within the forward side's depth or v
within the backward side's), so the best of them is picked exactly by one pass over the layers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from scrapers.db.explore.compatibility import MixRules
from scrapers.db.explore.refs import load_refs
from scrapers.db.explore.results import Path, PathStep
from scrapers.db.explore.transitions import Direction, steps

DEFAULT_MAX_STEPS = 6
MAX_STEPS = 10
# A side that reaches more tracks than this at one level stops the search (a path through such
# a hub is no answer anyone can check); the result says so.
MAX_FRONTIER = 20_000

_LEVEL = """
    SELECT o.anchor_id::text, o.other_id::text, count(DISTINCT o.setlist_id),
           t.bpm::float8, t.key
    FROM ({occurrences}) o JOIN tracks t ON t.id = o.other_id
    GROUP BY o.anchor_id, o.other_id, t.bpm, t.key
"""


@dataclass
class _Side:
    """One side of the search: its distances and the tracks of its last level."""

    direction: Direction
    distance: dict[str, int]
    frontier: set[str]
    depth: int = 0


@dataclass
class _Search:
    rules: MixRules
    attributes: dict[str, tuple[float | None, str | None]] = field(default_factory=dict)
    edges: dict[tuple[str, str], int] = field(default_factory=dict)


def build_path(
    connection: Any,
    source_id: str,
    target_id: str,
    max_steps: int = DEFAULT_MAX_STEPS,
    rules: MixRules | None = None,
) -> Path:
    """The best path from ``source_id`` to ``target_id`` in at most ``max_steps`` transitions.

    ``Path.steps`` is empty when there is none (``Path.reason`` says why); a track to itself is a
    path of one step and no transition.
    """
    if isinstance(max_steps, bool) or not isinstance(max_steps, int):
        raise ValueError(f"max_steps must be a whole number, got {max_steps!r}")
    if not 1 <= max_steps <= MAX_STEPS:
        raise ValueError(f"max_steps must be between 1 and {MAX_STEPS}, got {max_steps}")
    search = _Search(rules or MixRules())
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id::text, bpm::float8, key FROM tracks WHERE id = ANY(%s::uuid[])",
            ([source_id, target_id],),
        )
        search.attributes.update((track, (bpm, key)) for track, bpm, key in cursor.fetchall())
        missing = [track for track in (source_id, target_id) if track not in search.attributes]
        if missing:
            return Path((), f"no track with id {missing[0]}")
        if source_id == target_id:
            return Path((PathStep(load_refs(cursor, [source_id])[source_id], None),))
        forward = _Side(Direction.AFTER, {source_id: 0}, {source_id})
        backward = _Side(Direction.BEFORE, {target_id: 0}, {target_id})
        while forward.depth + backward.depth < max_steps:
            side = forward if len(forward.frontier) <= len(backward.frontier) else backward
            _expand(cursor, search, side)
            met = forward.distance.keys() & backward.distance.keys()
            if met:
                chain = _best_chain(search, forward, backward, source_id, target_id)
                refs = load_refs(cursor, chain)
                sets = [None] + [search.edges[pair] for pair in itertools.pairwise(chain)]
                return Path(tuple(PathStep(refs[t], n) for t, n in zip(chain, sets, strict=True)))
            if not side.frontier:
                return Path((), _reason("no path", search.rules, "no DJ played on from there"))
            if len(side.frontier) > MAX_FRONTIER:
                return Path((), f"search stopped: more than {MAX_FRONTIER:,} tracks at one step")
    return Path((), _reason(f"no path within {max_steps} steps", search.rules))


def _reason(none: str, rules: MixRules, dead_end: str = "") -> str:
    """Why no path was found; with mix rules, that they left steps out (not that DJs never
    played on)."""
    if not rules.active:
        return f"{none}: {dead_end}" if dead_end else none
    asked = [f"a BPM window of ±{rules.bpm_window:g} %"] if rules.bpm_window is not None else []
    asked += ["harmonic keys"] if rules.harmonic_keys else []
    return f"{none} that keeps {' and '.join(asked)}"


def _expand(cursor: Any, search: _Search, side: _Side) -> None:
    """Read every transition out of (forward) or into (backward) the side's last level."""
    occurrences = steps(side.direction, "a.track_id = ANY(%s::uuid[])")
    cursor.execute(_LEVEL.format(occurrences=occurrences), (sorted(side.frontier),))
    reached: set[str] = set()
    for anchor, other, sets, bpm, key in cursor.fetchall():
        search.attributes.setdefault(other, (bpm, key))
        before, after = (anchor, other) if side.direction is Direction.AFTER else (other, anchor)
        if search.rules.active and not search.rules.allows(
            *search.attributes[before], *search.attributes[after]
        ):
            continue
        search.edges[(before, after)] = sets
        if other not in side.distance:
            side.distance[other] = side.depth + 1
            reached.add(other)
    side.depth += 1
    side.frontier = reached


def _best_chain(
    search: _Search, forward: _Side, backward: _Side, source_id: str, target_id: str
) -> list[str]:
    """The shortest chain with the greatest sum of setlists, by one pass over its layers."""
    length = forward.depth + backward.depth

    def layer(index: int) -> list[str]:
        if index <= forward.depth:
            return sorted(t for t, d in forward.distance.items() if d == index)
        return sorted(t for t, d in backward.distance.items() if d == length - index)

    best: dict[str, tuple[int, list[str]]] = {source_id: (0, [source_id])}
    for index in range(1, length + 1):
        current: dict[str, tuple[int, list[str]]] = {}
        for track in layer(index):
            options = [
                (total + search.edges[(before, track)], [*chain, track])
                for before, (total, chain) in best.items()
                if (before, track) in search.edges
            ]
            if options:
                current[track] = max(options, key=lambda option: (option[0], option[1]))
        best = current
    return best[target_id][1]
