"""Query parameters the pages and the API share, declared once (FastAPI validates them and puts
them in the OpenAPI document)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query

from scrapers.db import explore
from scrapers.explorer.web import views
from scrapers.explorer.web.catalogue import catalogue_transaction

MAX_TEXT = 300

Limit = Annotated[
    int, Query(ge=1, le=explore.MAX_LIMIT, description="rows per list, most played first")
]
SearchText = Annotated[
    str,
    Query(
        min_length=1,
        max_length=MAX_TEXT,
        description='"ARTIST - TITLE", words of either, an ISRC or a Spotify ID',
    ),
]

DjName = Annotated[
    str, Query(min_length=1, max_length=MAX_TEXT, description="the DJ's name as setlists write it")
]
TrackId = Annotated[uuid.UUID, Path(description="the track's id")]
SetlistReference = Annotated[
    str, Path(max_length=100, description="the setlist's id, or the site's tracklist id")
]
Since = Annotated[date | None, Query(description="sets played on or after (YYYY-MM-DD)")]
Until = Annotated[date | None, Query(description="sets played on or before (YYYY-MM-DD)")]
Genre = Annotated[str, Query(max_length=200, description="sets tagged with this genre")]


def path_request(
    connection: Annotated[Any, Depends(catalogue_transaction)],
    source: Annotated[
        str, Query(alias="from", max_length=MAX_TEXT, description="first track: name or id")
    ] = "",
    target: Annotated[
        str, Query(alias="to", max_length=MAX_TEXT, description="last track: name or id")
    ] = "",
    from_id: Annotated[str, Query(max_length=40, description="first track's id")] = "",
    to_id: Annotated[str, Query(max_length=40, description="last track's id")] = "",
    max_steps: Annotated[
        int, Query(ge=1, le=explore.MAX_STEPS, description="at most this many transitions")
    ] = explore.DEFAULT_MAX_STEPS,
    bpm_window: Annotated[
        str, Query(max_length=12, description="each step within ±this % of BPM (empty: any)")
    ] = "",
    harmonic: Annotated[bool, Query(description="each step to a Camelot neighbour key")] = False,
) -> views.PathRequest | None:
    """The set builder's request; None when neither track was given (an empty form)."""
    if not (source.strip() or target.strip() or from_id or to_id):
        return None
    return views.PathRequest(
        views.endpoint(connection, source, from_id),
        views.endpoint(connection, target, to_id),
        max_steps,
        _percent(bpm_window),
        harmonic,
    )


def _percent(text: str) -> float | None:
    """An optional number from a form field ("" is none)."""
    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise HTTPException(400, f"bpm_window must be a number, got {text[:12]!r}") from None
