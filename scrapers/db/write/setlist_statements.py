"""The SQL of a batch's setlists and their rows: upserts that write only what changed, the
removal of rows a refreshed page no longer shows, and which fetches are older than the stored one.

Of two fetches of one set, the newest wins (``setlists.fetched_at``, migration 010): a setlist or
row fetched before the stored set was is *outdated*, and never overwrites it, whoever writes it
and in whatever order (a spool replayed after a newer crawl, two crawl workers).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping

import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extras import execute_values

from scrapers.db.write.records import Placement, SetlistRecord
from scrapers.metrics import RowChange

# Sorts before any fetch time: a record that does not say when it was fetched is the oldest.
_NEVER = dt.datetime.min.replace(tzinfo=dt.UTC)

ROW_COLUMNS = (
    "setlist_id",
    "row_index",
    "position",
    "played_with_previous",
    "is_mashup",
    "mashup_parent_row",
    "cue_seconds",
    "track_id",
    "raw_artist",
    "raw_title",
    "label",
    "site_track_id",
    "is_unknown",
    "is_partial_id",
)


def merged_setlists(setlists: Iterable[SetlistRecord]) -> list[SetlistRecord]:
    """One record per set: the newest fetch's values, an older one's where it has none."""
    merged: dict[tuple[str, str], SetlistRecord] = {}
    for setlist in sorted(setlists, key=lambda s: s.fetched_at or _NEVER):
        previous = merged.get(setlist.key)
        if previous is not None:
            for name, value in vars(setlist).items():
                if value in (None, []):
                    setattr(setlist, name, getattr(previous, name))
        merged[setlist.key] = setlist
    return [merged[key] for key in sorted(merged)]


def fetch_times(
    setlists: Iterable[SetlistRecord], placements: Iterable[Placement]
) -> dict[tuple[str, str], dt.datetime | None]:
    """When the batch's fetch of each set named was made: the newest of its setlist's and rows'
    (None when none of them says)."""
    times: dict[tuple[str, str], dt.datetime | None] = {}
    for key, moment in [(s.key, s.fetched_at) for s in setlists] + [
        (p.setlist_key, p.fetched_at) for p in placements
    ]:
        known = times.get(key)
        times[key] = moment if known is None or (moment is not None and moment > known) else known
    return times


def outdated_sets(
    cursor: psycopg2.extensions.cursor, incoming: Mapping[tuple[str, str], dt.datetime | None]
) -> dict[tuple[str, str], tuple[dt.datetime | None, dt.datetime]]:
    """The sets whose stored fetch is newer than the batch's (with both times). A batch that
    does not say when it fetched a set is older than any stored time. Read under the batch's
    advisory locks (``lock_keys``), so two writers of one set compare in turn."""
    if not incoming:
        return {}
    cursor.execute(
        """
        SELECT s.source, s.source_id, s.fetched_at
        FROM setlists s JOIN unnest(%s::text[], %s::text[]) AS k (source, source_id)
             USING (source, source_id)
        WHERE s.fetched_at IS NOT NULL
        """,
        ([source for source, _ in incoming], [source_id for _, source_id in incoming]),
    )
    outdated = {}
    for source, source_id, stored in cursor.fetchall():
        moment = incoming[(source, source_id)]
        if moment is None or moment < stored:
            outdated[(source, source_id)] = (moment, stored)
    return outdated


def write_setlists(
    cursor: psycopg2.extensions.cursor,
    setlists: list[SetlistRecord],
    referenced: Mapping[tuple[str, str], dt.datetime | None],
) -> dict[tuple[str, str], str]:
    """Upsert the batch's setlists (and a bare row for any setlist a track row names that was
    never seen, so that no row is dropped, with its rows' fetch time); returns their ids.

    A setlist with a content hash is a whole page read: it is marked checked when it was
    fetched (now, if it does not say; never later than now). Its other columns, and
    ``updated_at``, change only when the page says something new. None of them may be
    outdated (``outdated_sets``).
    """
    rows = [
        (
            s.source,
            s.source_id,
            s.url,
            s.title,
            s.djs,
            s.event,
            s.set_date,
            s.genres,
            s.stated_track_count,
            s.content_hash,
            s.row_count,
            s.fetched_at,
        )
        for s in setlists
    ]
    known = {s.key for s in setlists}
    rows += [
        (*key, None, None, [], None, None, [], None, None, None, referenced[key])
        for key in sorted(referenced.keys() - known)
    ]
    if not rows:
        return {}
    returned = execute_values(
        cursor,
        """
        INSERT INTO setlists AS s (source, source_id, url, title, djs, event, set_date, genres,
                                   stated_track_count, content_hash, row_count, fetched_at,
                                   checked_at)
        SELECT v.source, v.source_id, v.url, v.title, v.djs, v.event, v.set_date, v.genres,
               v.stated_track_count, v.content_hash, v.row_count,
               CASE WHEN v.fetched_at IS NOT NULL THEN least(v.fetched_at, now()) END,
               CASE WHEN v.content_hash IS NULL THEN NULL
                    ELSE least(coalesce(v.fetched_at, now()), now()) END
        FROM (VALUES %s) AS v (source, source_id, url, title, djs, event, set_date, genres,
                               stated_track_count, content_hash, row_count, fetched_at)
        ON CONFLICT (source, source_id) DO UPDATE SET
            url = coalesce(EXCLUDED.url, s.url),
            title = coalesce(EXCLUDED.title, s.title),
            djs = CASE WHEN cardinality(EXCLUDED.djs) > 0 THEN EXCLUDED.djs ELSE s.djs END,
            event = coalesce(EXCLUDED.event, s.event),
            set_date = coalesce(EXCLUDED.set_date, s.set_date),
            genres = CASE WHEN cardinality(EXCLUDED.genres) > 0
                          THEN EXCLUDED.genres ELSE s.genres END,
            stated_track_count = coalesce(EXCLUDED.stated_track_count, s.stated_track_count),
            content_hash = coalesce(EXCLUDED.content_hash, s.content_hash),
            row_count = coalesce(EXCLUDED.row_count, s.row_count),
            fetched_at = greatest(EXCLUDED.fetched_at, s.fetched_at),
            checked_at = greatest(EXCLUDED.checked_at, s.checked_at),
            updated_at = CASE
                WHEN (coalesce(EXCLUDED.url, s.url), coalesce(EXCLUDED.title, s.title),
                      coalesce(EXCLUDED.event, s.event),
                      coalesce(EXCLUDED.set_date, s.set_date),
                      coalesce(EXCLUDED.stated_track_count, s.stated_track_count),
                      coalesce(EXCLUDED.content_hash, s.content_hash))
                     IS DISTINCT FROM
                     (s.url, s.title, s.event, s.set_date, s.stated_track_count, s.content_hash)
                     OR (cardinality(EXCLUDED.djs) > 0 AND EXCLUDED.djs <> s.djs)
                     OR (cardinality(EXCLUDED.genres) > 0 AND EXCLUDED.genres <> s.genres)
                THEN now() ELSE s.updated_at END
        RETURNING source, source_id, id::text
        """,
        rows,
        template="(%s, %s, %s, %s, %s::text[], %s, %s::date, %s::text[], %s::integer, %s,"
        " %s::integer, %s::timestamptz)",
        page_size=len(rows),
        fetch=True,
    )
    return {(source, source_id): setlist_id for source, source_id, setlist_id in returned}


def write_setlist_rows(
    cursor: psycopg2.extensions.cursor,
    placements: Mapping[tuple[tuple[str, str], int], tuple[Placement, str | None]],
    setlist_ids: Mapping[tuple[str, str], str],
) -> Counter[RowChange]:
    """Upsert the rows; a row already stored as it is now is not written. Returns how many
    rows were added and updated (a refreshed page: an "ID" now known, positions, cues)."""
    changes: Counter[RowChange] = Counter()
    if not placements:
        return changes
    rows = [
        (
            setlist_ids[p.setlist_key],
            p.row_index,
            p.position,
            p.played_with_previous,
            p.is_mashup,
            p.mashup_parent_row,
            p.cue_seconds,
            track_id,
            p.raw_artist,
            p.raw_title,
            p.label,
            p.site_track_id,
            p.is_unknown,
            p.is_partial_id,
        )
        for p, track_id in placements.values()
    ]
    columns = [sql.Identifier(c) for c in ROW_COLUMNS[2:]]
    updates = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(c) for c in columns)
    stored = sql.SQL(", ").join(sql.SQL("setlist_tracks.{}").format(c) for c in columns)
    incoming = sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(c) for c in columns)
    written = execute_values(
        cursor,
        sql.SQL(
            "INSERT INTO setlist_tracks ({}) VALUES %s"
            " ON CONFLICT (setlist_id, row_index) DO UPDATE SET {}"
            " WHERE ({}) IS DISTINCT FROM ({})"
            " RETURNING xmax = 0"
        ).format(sql.SQL(", ").join(map(sql.Identifier, ROW_COLUMNS)), updates, stored, incoming),
        sorted(rows),
        page_size=len(rows),
        fetch=True,
    )
    for (inserted,) in written:
        changes[RowChange.ADDED if inserted else RowChange.UPDATED] += 1
    return changes


def remove_rows_past_the_end(
    cursor: psycopg2.extensions.cursor,
    setlists: list[SetlistRecord],
    setlist_ids: Mapping[tuple[str, str], str],
) -> int:
    """Rows the site no longer shows: a page of N rows keeps rows 0..N-1 (tracks stay)."""
    ends = [(setlist_ids[s.key], s.row_count) for s in setlists if s.row_count is not None]
    if not ends:
        return 0
    cursor.execute(
        """
        DELETE FROM setlist_tracks t
        USING unnest(%s::uuid[], %s::integer[]) AS e (setlist_id, row_count)
        WHERE t.setlist_id = e.setlist_id AND t.row_index >= e.row_count
        """,
        ([setlist_id for setlist_id, _ in ends], [count for _, count in ends]),
    )
    return cursor.rowcount
