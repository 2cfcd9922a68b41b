"""What each page and its JSON twin show, read from the catalogue (``scrapers.db.explore``).

The pages router renders these results as HTML and the API router returns them as JSON, so a
page and ``/api/…`` always agree. Input the query module refuses (``ValueError``: an empty
search, a bad limit, a BPM window out of range) becomes a 400 that says why; a track, DJ or
setlist that does not exist a 404.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from fastapi import HTTPException

from scrapers.db import explore
from scrapers.db.explore.tracks import track_plays
from scrapers.explorer import playlists


@contextmanager
def user_input() -> Iterator[None]:
    """A ``ValueError`` from the query module, about what the user typed, is a 400."""
    try:
        yield
    except ValueError as error:
        raise HTTPException(400, str(error)) from error


def not_found(what: str) -> HTTPException:
    return HTTPException(404, what)


def bad_request(what: str) -> HTTPException:
    return HTTPException(400, what)


def track_id_of(text: str) -> str | None:
    """``text`` as a track id (a UUID), or None."""
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        return None


@dataclass(frozen=True)
class GraphNode:
    """A track of the neighbourhood graph: ``plays`` (its setlists) sizes it."""

    id: str
    label: str
    plays: int
    role: str  # "centre", "follower", "predecessor" or "both"


@dataclass(frozen=True)
class GraphEdge:
    """``source`` then ``target`` in ``sets`` setlists: its width."""

    source: str
    target: str
    sets: int
    djs: int


@dataclass(frozen=True)
class TrackPage:
    detail: explore.TrackDetail
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]


def track_page(connection: Any, track_id: str, limit: int) -> TrackPage:
    """The track, its lists, and its neighbourhood as a graph (followers and predecessors)."""
    with user_input():
        detail = explore.track_detail(connection, track_id, limit)
    if detail is None:
        raise not_found(f"no track with id {track_id}")
    around = detail.neighbourhood
    roles: dict[str, str] = {}
    for neighbour in around.followers:
        roles[neighbour.track.id] = "follower"
    for neighbour in around.predecessors:
        known = roles.get(neighbour.track.id)
        roles[neighbour.track.id] = "both" if known == "follower" else "predecessor"
    roles.pop(detail.track.id, None)
    with connection.cursor() as cursor:
        plays = track_plays(cursor, list(roles))
    tracks = {n.track.id: n.track for n in (*around.followers, *around.predecessors)}
    centre = detail.track
    nodes = [GraphNode(centre.id, _label(centre), detail.plays.sets, "centre")]
    nodes += [
        GraphNode(track, _label(tracks[track]), plays[track].sets if track in plays else 0, role)
        for track, role in roles.items()
    ]
    edges = [GraphEdge(centre.id, n.track.id, n.plays.sets, n.plays.djs) for n in around.followers]
    edges += [
        GraphEdge(n.track.id, centre.id, n.plays.sets, n.plays.djs) for n in around.predecessors
    ]
    return TrackPage(detail, tuple(nodes), tuple(edges))


def _label(track: explore.TrackRef) -> str:
    return f"{track.artist} - {track.title}"


def search(connection: Any, query: str, limit: int) -> tuple[explore.SearchHit, ...]:
    with user_input():
        return explore.search_tracks(connection, query, limit)


def dj(connection: Any, name: str, limit: int) -> explore.DjDetail:
    with user_input():
        found = explore.dj_detail(connection, name, limit)
    if found is None:
        raise not_found(f"no setlist names the DJ {name[:100]!r}")
    return found


def djs_like(connection: Any, name: str, limit: int) -> tuple[explore.DjCount, ...]:
    with user_input():
        return explore.find_djs(connection, name, limit)


def setlist(connection: Any, reference: str) -> explore.Setlist:
    found = explore.setlist(connection, reference.strip()[:100])
    if found is None:
        raise not_found(f"no setlist {reference[:100]!r}")
    return found


# The top lists read every played row of their sets: over a big catalogue's every set they take
# longer than the statement timeout (bench/RESULTS.md), over a year of sets well under it.
DEFAULT_TOP_DAYS = 365


@dataclass(frozen=True)
class TopLists:
    """The top lists and the range of set dates they were counted over (``None``: open)."""

    tracks: tuple[explore.TrackCount, ...]
    transitions: tuple[explore.Transition, ...]
    since: date | None
    until: date | None


def top(
    connection: Any, since: date | None, until: date | None, genre: str | None, limit: int
) -> TopLists:
    """The top lists of the sets played from ``since`` to ``until``; with neither given, of the
    last ``DEFAULT_TOP_DAYS`` days (a range given in part is kept as given)."""
    if since is None and until is None:
        since = date.today() - timedelta(days=DEFAULT_TOP_DAYS)
    with user_input():
        scope = explore.SetScope(since=since, until=until, genre=genre or None)
        return TopLists(
            explore.top_tracks(connection, scope, limit),
            explore.top_transitions(connection, scope, limit),
            since,
            until,
        )


@dataclass(frozen=True)
class Endpoint:
    """A track the set builder was asked for: what was typed (or the id picked) and the track
    it names; ``text`` is empty when neither was given."""

    text: str
    track: explore.TrackRef | None
    closest: bool  # found by similarity, not by id, identifier or exact name


def endpoint(connection: Any, text: str, track_id: str | None) -> Endpoint:
    """The track picked (``track_id``) or typed (``text``: an id, identifier or name)."""
    if track_id and not track_id_of(track_id):
        raise bad_request(f"not a track id: {track_id[:40]!r}")
    wanted = track_id_of(track_id or "") or track_id_of(text)
    if wanted:
        return Endpoint(text or wanted, explore.track_by_id(connection, wanted), False)
    if not text.strip():
        return Endpoint("", None, False)
    hits = search(connection, text, 1)
    if not hits:
        return Endpoint(text, None, False)
    return Endpoint(text, hits[0].track, hits[0].matched == "text")


WHICH_END = {"from": "first", "to": "last"}
GIVE_BOTH_ENDS = "give the first and the last track: from=…&to=…"


@dataclass(frozen=True)
class PathRequest:
    source: Endpoint
    target: Endpoint
    max_steps: int
    bpm_window: float | None
    harmonic: bool


def build_path(connection: Any, request: PathRequest) -> explore.Path:
    """The set builder's path; a 400 when an end is missing, a 404 naming the end no track
    matches."""
    for side, found in (("from", request.source), ("to", request.target)):
        if not found.text.strip():
            raise bad_request(f"give the {WHICH_END[side]} track: {side}=…")
        if found.track is None:
            raise not_found(f"no track matches {side} {found.text[:100]!r}")
    assert request.source.track and request.target.track
    with user_input():
        rules = explore.MixRules(bpm_window=request.bpm_window, harmonic_keys=request.harmonic)
        return explore.build_path(
            connection,
            request.source.track.id,
            request.target.track.id,
            request.max_steps,
            rules,
        )


def download(playlist: playlists.Playlist, output: playlists.Format) -> tuple[str, str, str]:
    """``(text, media type, file name)`` of ``playlist`` in ``output``'s format. The file name
    is ASCII letters, digits and dashes: a header carries it, and titles are any script."""
    extension, media_type = playlists.MEDIA_TYPES[output]
    # An HTTP header is Latin-1: the name keeps ASCII letters and digits ("Väth" -> "vath").
    letters = unicodedata.normalize("NFKD", playlist.title.lower())
    letters = "".join(c for c in letters if not unicodedata.combining(c))
    stem = "".join(c if c.isascii() and c.isalnum() else "-" for c in letters)
    stem = "-".join(filter(None, stem.split("-")))[:80] or "playlist"
    return playlists.render(playlist, output), media_type, f"{stem}.{extension}"
