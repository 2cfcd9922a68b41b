"""What the soak compares: catalogues by natural keys, and what each crawl run said it did.

A catalogue is read as multisets of tuples without uuids or times: setlists by
``(source, source_id)`` with their header fields, setlist rows by ``(source_id, row_index)``
with the natural key of the track they point at, tracks by their identifying columns and
credits. Two catalogues are identical when the three multisets are.
"""

from __future__ import annotations

import re
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from scrapers.db.server.connection import connect

SETLISTS = """
SELECT source, source_id, url, title, djs, event, set_date::text, genres, stated_track_count,
       content_hash, row_count, checked_at IS NOT NULL
FROM setlists
"""
ROWS = """
SELECT s.source_id, r.row_index, r.position, r.played_with_previous, r.is_mashup,
       r.mashup_parent_row, r.cue_seconds, r.raw_artist, r.raw_title, r.label, r.site_track_id,
       r.is_unknown, r.is_partial_id, t.title_key, t.title, t.version
FROM setlist_tracks r JOIN setlists s ON s.id = r.setlist_id
LEFT JOIN tracks t ON t.id = r.track_id
"""
TRACKS = """
SELECT t.title, t.normalized_title, t.title_key, t.isrc, t.spotify_id, t.is_remix, t.version,
       t.label, t.genre,
       (SELECT string_agg(a.normalized_name || '/' || ta.role || '/' || ta.position, ','
                          ORDER BY a.normalized_name, ta.role, ta.position)
        FROM track_artists ta JOIN artists a ON a.id = ta.artist_id WHERE ta.track_id = t.id)
FROM tracks t
"""


@dataclass
class Catalogue:
    setlists: Counter[tuple[Any, ...]]
    rows: Counter[tuple[Any, ...]]
    tracks: Counter[tuple[Any, ...]]
    rejected: int

    @property
    def source_ids(self) -> set[str]:
        return {key[1] for key in self.setlists}

    def counts(self) -> str:
        return (
            f"{sum(self.setlists.values())} setlists, {sum(self.rows.values())} rows,"
            f" {sum(self.tracks.values())} tracks, {self.rejected} rejected items"
        )


def read_catalogue(url: str) -> Catalogue:
    def rows(cursor: Any, query: str) -> Counter[tuple[Any, ...]]:
        cursor.execute(query)
        return Counter(tuple(_hashable(value) for value in row) for row in cursor.fetchall())

    with closing(connect(url)) as connection, connection.cursor() as cursor:
        catalogue = Catalogue(rows(cursor, SETLISTS), rows(cursor, ROWS), rows(cursor, TRACKS), 0)
        cursor.execute("SELECT count(*) FROM rejected_items")
        catalogue.rejected = cursor.fetchone()[0]
    return catalogue


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def differences(reference: Catalogue, soaked: Catalogue, examples: int = 3) -> list[str]:
    """One line per table that differs: how many tuples are missing and extra, with examples."""
    found = []
    for table in ("setlists", "rows", "tracks"):
        expected, got = getattr(reference, table), getattr(soaked, table)
        missing, extra = expected - got, got - expected
        if missing or extra:
            found.append(
                f"{table}: {sum(missing.values())} missing, {sum(extra.values())} extra"
                f" (missing e.g. {list(missing)[:examples]}; extra e.g. {list(extra)[:examples]})"
            )
    if soaked.rejected != reference.rejected:
        found.append(f"rejected items: {soaked.rejected}, reference {reference.rejected}")
    return found


def stored_whole(url: str) -> set[str]:
    """Source ids of the setlists stored whole (their setlist item arrived: ``row_count`` set,
    and that many rows stored)."""
    with closing(connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT s.source_id FROM setlists s
            WHERE s.row_count IS NOT NULL
              AND s.row_count = (SELECT count(*) FROM setlist_tracks r WHERE r.setlist_id = s.id)
            """
        )
        return {row[0] for row in cursor.fetchall()}


def database_now(url: str) -> Any:
    with closing(connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def checked_since(url: str, since: Any) -> list[str]:
    """Source ids of the setlists whose ``checked_at`` is ``since`` or later: after a spool
    replay, the sets the replay stamped with its own time instead of their page's fetch time."""
    with closing(connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT source_id FROM setlists WHERE checked_at >= %s ORDER BY source_id", (since,)
        )
        return [row[0] for row in cursor.fetchall()]


STAT_NAMES = (
    "finish_reason", "tracklist/pages", "database/items_stored", "database/items_spooled",
    "database/items_lost", "retry/max_reached", "downloader/exception_count",
    "log_count/ERROR", "log_count/CRITICAL",
)  # fmt: skip


def final_stats(log: str) -> dict[str, Any]:
    """The named entries of the last "Dumping Scrapy stats" block of a crawl's log."""
    start = log.rfind("Dumping Scrapy stats")
    if start < 0:
        return {}
    block = log[start:]
    stats: dict[str, Any] = {}
    for name in STAT_NAMES:
        match = re.search(rf"'{re.escape(name)}': ('([^']*)'|\d+)", block)
        if match:
            stats[name] = match.group(2) if match.group(2) is not None else int(match.group(1))
    return stats
