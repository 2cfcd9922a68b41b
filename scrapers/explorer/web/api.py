"""The JSON API under ``/api/``: what each page shows, as ``as_json`` writes the query module's
results (the same shapes ``tracklists-explore --json`` reads from)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from scrapers.db import explore
from scrapers.explorer.web import views
from scrapers.explorer.web.catalogue import catalogue_transaction
from scrapers.explorer.web.params import (
    MAX_TEXT,
    DjName,
    Genre,
    Limit,
    SearchText,
    SetlistReference,
    Since,
    TrackId,
    Until,
    path_request,
)

Catalogue = Annotated[Any, Depends(catalogue_transaction)]

router = APIRouter(prefix="/api", tags=["catalogue"])


@router.get("/search", summary="Tracks by name, ISRC or Spotify ID, best match first")
def search(
    connection: Catalogue, q: SearchText, limit: Limit = explore.DEFAULT_LIMIT
) -> dict[str, Any]:
    return {"results": explore.as_json(views.search(connection, q, limit))}


@router.get(
    "/tracks/{track_id}",
    summary="A track: identifiers, plays, what DJs play after, before and with it, top DJs",
)
def track(connection: Catalogue, track_id: TrackId, limit: Limit = 15) -> dict[str, Any]:
    found = views.track_page(connection, str(track_id), limit)
    return {
        **explore.as_json(found.detail),
        "graph": {
            "nodes": explore.as_json(found.nodes),
            "edges": explore.as_json(found.edges),
        },
    }


@router.get("/djs", summary="DJ names like the one given, with their number of setlists")
def djs(
    connection: Catalogue,
    name: Annotated[str, Query(min_length=1, max_length=MAX_TEXT, description="a DJ's name")],
    limit: Limit = 10,
) -> dict[str, Any]:
    return {"results": explore.as_json(views.djs_like(connection, name, limit))}


@router.get("/dj", summary="A DJ (exact name): their sets, most played tracks and transitions")
def dj(
    connection: Catalogue,
    name: DjName,
    limit: Limit = explore.DEFAULT_LIMIT,
) -> dict[str, Any]:
    return explore.as_json(views.dj(connection, name, limit))


@router.get("/setlists/{reference}", summary="A setlist as the site shows it, every row")
def setlist(connection: Catalogue, reference: SetlistReference) -> dict[str, Any]:
    return explore.as_json(views.setlist(connection, reference))


@router.get(
    "/top",
    summary="The most played tracks and transitions, optionally in a scope",
    description=f"Without `since` and `until`, of the sets of the last {views.DEFAULT_TOP_DAYS} "
    "days; the answer's `since` and `until` say which range was counted.",
)
def top(
    connection: Catalogue,
    since: Since = None,
    until: Until = None,
    genre: Genre = "",
    limit: Limit = explore.DEFAULT_LIMIT,
) -> dict[str, Any]:
    return explore.as_json(views.top(connection, since, until, genre, limit))


@router.get(
    "/path", summary="The set builder: a path of played transitions from one track to another"
)
def path(
    connection: Catalogue,
    asked: Annotated[views.PathRequest | None, Depends(path_request)],
) -> dict[str, Any]:
    if asked is None:
        raise views.bad_request(views.GIVE_BOTH_ENDS)
    found = views.build_path(connection, asked)
    # Each step names its track at the top level too, as ``tracklists-explore path --json``.
    steps = [
        {"artist": step.track.artist, "title": step.track.title, **explore.as_json(step)}
        for step in found.steps
    ]
    return {
        "from": explore.as_json(asked.source.track),
        "to": explore.as_json(asked.target.track),
        "found": found.found,
        **explore.as_json(found),
        "steps": steps,
    }
