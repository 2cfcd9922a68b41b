"""The explorer's HTML pages, server-rendered (Jinja2), and the playlist downloads they link.

Every page reads through ``catalogue_transaction`` (one read-only transaction) in the
threadpool: the endpoints are plain ``def``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from scrapers.db import explore
from scrapers.explorer import playlists
from scrapers.explorer.playlists import Format
from scrapers.explorer.web import views
from scrapers.explorer.web.catalogue import catalogue_transaction
from scrapers.explorer.web.params import (
    MAX_TEXT,
    DjName,
    Genre,
    Limit,
    SetlistReference,
    Since,
    TrackId,
    Until,
    path_request,
)

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
Catalogue = Annotated[Any, Depends(catalogue_transaction)]

router = APIRouter(default_response_class=HTMLResponse, include_in_schema=False)


def page(request: Request, template: str, **context: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, template, context)


@router.get("/")
def search_page(
    request: Request,
    connection: Catalogue,
    q: Annotated[str, Query(max_length=MAX_TEXT)] = "",
    limit: Limit = explore.DEFAULT_LIMIT,
) -> HTMLResponse:
    hits = views.search(connection, q, limit) if q.strip() else ()
    djs = views.djs_like(connection, q, 5) if q.strip() else ()
    return page(request, "search.html", query=q, hits=hits, djs=djs)


@router.get("/track/{track_id}")
def track_page(
    request: Request, connection: Catalogue, track_id: TrackId, limit: Limit = 15
) -> HTMLResponse:
    found = views.track_page(connection, str(track_id), limit)
    graph = {"nodes": explore.as_json(found.nodes), "edges": explore.as_json(found.edges)}
    # Inside <script>: no "</script>" or "<!--" can come out of a track's name.
    graph_json = json.dumps(graph).replace("<", "\\u003c").replace(">", "\\u003e")
    return page(
        request,
        "track.html",
        detail=found.detail,
        track=found.detail.track,
        graph_json=graph_json,
        formats=list(Format),
    )


@router.get("/track/{track_id}/played-after.{output}")
def track_played_after_download(
    connection: Catalogue, track_id: TrackId, output: Format, limit: Limit = 50
) -> Response:
    found = views.track_page(connection, str(track_id), limit).detail
    return _download(playlists.from_followers(found.track, found.neighbourhood.followers), output)


@router.get("/dj")
def dj_page(
    request: Request,
    connection: Catalogue,
    name: DjName,
    limit: Limit = explore.DEFAULT_LIMIT,
) -> HTMLResponse:
    return page(request, "dj.html", dj=views.dj(connection, name, limit))


@router.get("/setlist/{reference}")
def setlist_page(
    request: Request, connection: Catalogue, reference: SetlistReference
) -> HTMLResponse:
    found = views.setlist(connection, reference)
    return page(request, "setlist.html", found=found, summary=found.setlist, formats=list(Format))


@router.get("/setlist/{reference}/tracks.{output}")
def setlist_download(
    connection: Catalogue, reference: SetlistReference, output: Format
) -> Response:
    return _download(playlists.from_setlist(views.setlist(connection, reference)), output)


@router.get("/top")
def top_page(
    request: Request,
    connection: Catalogue,
    since: Since = None,
    until: Until = None,
    genre: Genre = "",
    limit: Limit = explore.DEFAULT_LIMIT,
) -> HTMLResponse:
    lists = views.top(connection, since, until, genre, limit)
    return page(
        request,
        "top.html",
        lists=lists,
        genre=genre,
        default_days=views.DEFAULT_TOP_DAYS if since is None and until is None else None,
    )


@router.get("/path")
def path_page(
    request: Request,
    connection: Catalogue,
    asked: Annotated[views.PathRequest | None, Depends(path_request)],
) -> HTMLResponse:
    found, problem = None, None
    if asked is not None:
        try:
            found = views.build_path(connection, asked)
        except HTTPException as error:  # a track no search finds: said beside the form
            problem = str(error.detail)
    return page(
        request,
        "path.html",
        asked=asked,
        path=found,
        problem=problem,
        path_query=str(request.url.query),
        max_steps=explore.MAX_STEPS,
        formats=list(Format),
    )


@router.get("/path/playlist.{output}")
def path_download(
    connection: Catalogue,
    asked: Annotated[views.PathRequest | None, Depends(path_request)],
    output: Format,
) -> Response:
    if asked is None:
        raise views.bad_request(views.GIVE_BOTH_ENDS)
    found = views.build_path(connection, asked)
    if not found.found:
        raise views.not_found(found.reason or "no path")
    return _download(playlists.from_path(found), output)


def _download(playlist: playlists.Playlist, output: Format) -> Response:
    text, media_type, filename = views.download(playlist, output)
    return Response(
        text,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
