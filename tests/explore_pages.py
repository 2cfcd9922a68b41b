"""Setlist pages written for the explorer's tests, stored through the real batch writer.

A page is a list of lines: ``"Artist - Title"`` a played row, ``"w/ Artist - Title"`` a row
played with the one above, ``"+ Artist - Title"`` a mashup part of the last played row, ``"ID"``
an unknown row, ``"Artist - ID"`` a partly unknown row.
"""

from __future__ import annotations

from typing import Any

from scrapers.db.write.writer import BatchWriter
from scrapers.items import SetlistItem, TrackItem


def page_items(
    source_id: str,
    lines: list[str],
    djs: tuple[str, ...] = ("DJ One",),
    date: str | None = "2025-01-01",
    genres: tuple[str, ...] = (),
) -> list[Any]:
    """The items the spider yields for such a page: its rows, then its setlist."""
    items: list[Any] = []
    parent: int | None = None
    position = 0
    for index, line in enumerate(lines):
        kind, _, text = line.partition(" ") if line[:2] in ("w/", "+ ") else ("", "", line)
        if not kind:
            parent = index
            position += 1
        artist, _, title = text.partition(" - ")
        unknown = text == "ID"
        items.append(
            TrackItem(
                setlist_source="1001tracklists",
                setlist_source_id=source_id,
                row_index=index,
                position=position if not kind else None,
                artist="ID" if unknown else artist,
                title="ID" if unknown else title,
                is_unknown=unknown,
                is_partial_id=not unknown and title == "ID",
                played_with_previous=kind == "w/",
                mashup_parent_row=parent if kind == "+" else None,
            )
        )
    items.append(
        SetlistItem(
            source="1001tracklists", source_id=source_id, title=f"Set {source_id}",
            djs=list(djs), date=date, genres=list(genres), row_count=len(lines),
            content_hash=f"{source_id}:{hash(tuple(lines))}",
        )
    )  # fmt: skip
    return items


def store(url: str, *pages: list[Any]) -> None:
    """Write each page's items through the batch writer, as the crawl does."""
    with BatchWriter(url, origin="test") as writer:
        for items in pages:
            writer.write(items)


def track_id(db: Any, artist: str, title: str) -> str:
    """The id of the one track stored under that spelling."""
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT track_id::text FROM track_lookup WHERE raw_artist = %s AND raw_title = %s",
            (artist, title),
        )
        [(found,)] = cursor.fetchall()
    return found
