"""Setlists: one as the site shows it (every row, unknown ones too), and a scope of setlists.

A ``SetScope`` (date range, genre, DJ) narrows what top lists count; it renders one SQL
condition on a ``setlists`` row aliased ``s``, with its parameters.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from scrapers.db.explore.refs import load_refs
from scrapers.db.explore.results import Setlist, SetlistRow, SetlistSummary

SUMMARY_COLUMNS = (
    "s.id::text, s.source, s.source_id, s.url, s.title, s.djs, s.event, s.set_date, s.genres"
)
MAX_SETLIST_ROWS = 1000
MAX_TEXT = 200


def summary(row: tuple[Any, ...]) -> SetlistSummary:
    """A SetlistSummary from the ``SUMMARY_COLUMNS`` of ``row``."""
    id_, source, source_id, url, title, djs, event, set_date, genres = row[:9]
    return SetlistSummary(
        id_, source, source_id, url, title, tuple(djs), event, set_date, tuple(genres)
    )


@dataclass(frozen=True)
class SetScope:
    """Which setlists count: played between ``since`` and ``until`` (inclusive), tagged with
    ``genre`` (any case), by ``dj`` (exact name). Unset fields do not narrow."""

    since: date | None = None
    until: date | None = None
    genre: str | None = None
    dj: str | None = None

    def __post_init__(self) -> None:
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"the date range is empty: {self.since} is after {self.until}")
        for name in ("genre", "dj"):
            value = getattr(self, name)
            if value is not None and not 0 < len(value) <= MAX_TEXT:
                raise ValueError(f"{name} must be 1 to {MAX_TEXT} characters")

    def condition(self) -> tuple[str, dict[str, Any]]:
        """SQL condition on ``s`` and its named parameters (``true`` when nothing narrows)."""
        parts = ["true"]
        if self.since:
            parts.append("s.set_date >= %(scope_since)s")
        if self.until:
            parts.append("s.set_date <= %(scope_until)s")
        if self.genre:
            parts.append(
                "EXISTS (SELECT 1 FROM unnest(s.genres) g WHERE lower(g) = lower(%(scope_genre)s))"
            )
        if self.dj:
            parts.append("s.djs @> ARRAY[%(scope_dj)s]::text[]")
        parameters = {
            "scope_since": self.since,
            "scope_until": self.until,
            "scope_genre": self.genre,
            "scope_dj": self.dj,
        }
        return " AND ".join(parts), parameters


def setlist(connection: Any, reference: str) -> Setlist | None:
    """A setlist by id, or by the site's tracklist id (``source_id``), with its rows in page
    order (at most ``MAX_SETLIST_ROWS``); None when there is none."""
    try:
        by, value = "s.id = %s::uuid", str(uuid.UUID(reference))
    except ValueError:
        by, value = "s.source_id = %s", reference
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {SUMMARY_COLUMNS} FROM setlists s WHERE {by} ORDER BY s.source LIMIT 1",
            (value,),
        )
        row = cursor.fetchone()
        if row is None:
            return None
        found = summary(row)
        cursor.execute(
            "SELECT row_index, position, played_with_previous, mashup_parent_row IS NOT NULL, "
            "cue_seconds, raw_artist, raw_title, track_id::text "
            "FROM setlist_tracks WHERE setlist_id = %s::uuid ORDER BY row_index LIMIT %s",
            (found.id, MAX_SETLIST_ROWS),
        )
        rows = cursor.fetchall()
        refs = load_refs(cursor, [row[-1] for row in rows if row[-1]])
    return Setlist(
        found,
        tuple(SetlistRow(*row[:-1], refs.get(row[-1]) if row[-1] else None) for row in rows),
    )
