"""A batch's tracks resolved set-based in PostgreSQL, over a staging table loaded by one COPY.

``writer_items`` holds the batch's track items (validated, with their identity keys and a
``Slot`` from ``resolution.schedule``); ``writer_tracks`` the tracks they may resolve to: the
stored candidates first, oldest first, then the tracks the batch creates. The tiers of
``resolution.Resolution`` run as joins, one round of mutually independent items at a time: ISRC,
then Spotify ID, then a known raw spelling (``writer_spellings``, read from ``track_lookup``),
then the oldest track of the title key that no identifier contradicts, else the item's new
track. Then the round's identifier claims follow ``conflicts.decide`` (gains, or rows of
``writer_conflicts``), and its new spellings are remembered. Followers take their leader's track.

What is written from here (tracks, credits, lookup rows) is ``statements``' job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import psycopg2.extensions
from psycopg2 import sql

from scrapers import identity
from scrapers.db import records
from scrapers.db.conflicts import Conflict
from scrapers.db.copy import copy_rows, new_id
from scrapers.db.merge import JSONB_MERGE
from scrapers.db.records import TrackRecord
from scrapers.db.resolution import MatchTier, Slot, follower_tier
from scrapers.statuses import ConflictResolution, IdentifierType

# At most this many stored tracks are read per ISRC, Spotify ID or title key.
CANDIDATES_PER_KEY = 1000
# ``writer_tracks.ord`` of the batch's new tracks: after every stored candidate, in item order.
NEW_TRACK_ORDER = 1 << 40

# The writer's statements are many short index lookups. The planner cannot know that each
# LATERAL lookup finds a row or two, and its estimate (millions of rows) crosses
# ``jit_above_cost``: compiling the query then took 0.5 s of a 0.57 s candidate fetch.
SESSION_SETUP = f"""
SET jit = off;
{JSONB_MERGE};
CREATE TEMP TABLE IF NOT EXISTS writer_items (
    n integer, round integer, leader integer, new_id uuid, isrc text, spotify_id text,
    raw_artist text, raw_title text, title_key text, title text, normalized_title text,
    is_remix boolean, bpm numeric, duration_ms integer, key text, label text, release_date date,
    genre text, musicbrainz_id uuid, version text, metadata jsonb, enrichment_status text,
    track_id uuid, matched text
) ON COMMIT DELETE ROWS;
CREATE INDEX IF NOT EXISTS writer_items_round ON writer_items (round);
CREATE TEMP TABLE IF NOT EXISTS writer_item_credits (
    n integer, ordinality integer, name text, artist_key text, role text, new_artist_id uuid
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS writer_tracks (
    id uuid, isrc text, spotify_id text, title_key text, ord bigint, is_new boolean,
    source_n integer
) ON COMMIT DELETE ROWS;
CREATE INDEX IF NOT EXISTS writer_tracks_id ON writer_tracks (id);
CREATE INDEX IF NOT EXISTS writer_tracks_isrc ON writer_tracks (isrc, ord);
CREATE INDEX IF NOT EXISTS writer_tracks_spotify_id ON writer_tracks (spotify_id, ord);
CREATE INDEX IF NOT EXISTS writer_tracks_title_key ON writer_tracks (title_key, ord);
CREATE TEMP TABLE IF NOT EXISTS writer_spellings (
    raw_artist text, raw_title text, track_id uuid, is_new boolean
) ON COMMIT DELETE ROWS;
CREATE INDEX IF NOT EXISTS writer_spellings_key ON writer_spellings (raw_artist, raw_title);
CREATE TEMP TABLE IF NOT EXISTS writer_conflicts (
    n integer, identifier_type text, track_id uuid, other_track_id uuid, stored_value text,
    incoming_value text, resolution text
) ON COMMIT DELETE ROWS;
"""
# Emptied by hand between the batches of one long transaction (bulk mode).
WORK_TABLES = (
    "writer_items",
    "writer_item_credits",
    "writer_tracks",
    "writer_spellings",
    "writer_conflicts",
)

_ITEM_COLUMNS = (
    "n",
    "round",
    "leader",
    "new_id",
    "isrc",
    "spotify_id",
    "raw_artist",
    "raw_title",
    "title_key",
    "title",
    "normalized_title",
    "is_remix",
    *records.OVERWRITE_COLUMNS,
    *records.FILL_ONLY_COLUMNS,
    "metadata",
    "enrichment_status",
)
_CREDIT_COLUMNS = ("n", "ordinality", "name", "artist_key", "role", "new_artist_id")
_VALUE_COLUMNS = (*records.OVERWRITE_COLUMNS, *records.FILL_ONLY_COLUMNS)

# (a, b): track ``b`` holds an ISRC or Spotify ID other than item ``a``'s: another recording.
_CONTRADICTS = """(({a}.isrc IS NOT NULL AND {b}.isrc IS NOT NULL AND {a}.isrc <> {b}.isrc)
    OR ({a}.spotify_id IS NOT NULL AND {b}.spotify_id IS NOT NULL
        AND {a}.spotify_id <> {b}.spotify_id))"""

# Each lookup is an index scan of the small work tables (LATERAL … LIMIT 1, the oldest first):
# their row counts are unknown to the planner, and a misjudged join here costs a scan per item.
_MATCH = f"""
WITH outcome_of AS (
    SELECT i.n, CASE
        WHEN bi.id IS NOT NULL THEN ARRAY[bi.id::text, 'isrc']
        WHEN bs.id IS NOT NULL AND NOT {_CONTRADICTS.format(a="i", b="bs")}
            THEN ARRAY[bs.id::text, 'spotify']
        WHEN bp.id IS NOT NULL AND NOT {_CONTRADICTS.format(a="i", b="bp")}
            THEN ARRAY[bp.id::text, 'spelling']
        WHEN bt.id IS NOT NULL THEN ARRAY[bt.id::text, 'title']
        ELSE ARRAY[i.new_id::text, 'new'] END AS outcome
    FROM writer_items i
    LEFT JOIN LATERAL (
        SELECT id FROM writer_tracks WHERE isrc = i.isrc ORDER BY ord LIMIT 1
    ) AS bi ON true
    LEFT JOIN LATERAL (
        SELECT id, isrc, spotify_id FROM writer_tracks
        WHERE spotify_id = i.spotify_id ORDER BY ord LIMIT 1
    ) AS bs ON true
    LEFT JOIN LATERAL (
        SELECT b.id, b.isrc, b.spotify_id FROM writer_spellings sp
        JOIN writer_tracks b ON b.id = sp.track_id
        WHERE sp.raw_artist = i.raw_artist AND sp.raw_title = i.raw_title LIMIT 1
    ) AS bp ON true
    LEFT JOIN LATERAL (
        SELECT b.id FROM writer_tracks b
        WHERE b.title_key = i.title_key AND NOT {_CONTRADICTS.format(a="i", b="b")}
        ORDER BY b.ord LIMIT 1
    ) AS bt ON true
    WHERE i.round = %(round)s
)
UPDATE writer_items w SET track_id = m.outcome[1]::uuid, matched = m.outcome[2]
FROM outcome_of m WHERE w.n = m.n
"""

# A later item of the round that reached the same track as an earlier one: the earlier one may
# change that track (an identifier gained), so the later one waits for the next round.
_DEFER = """
UPDATE writer_items w SET round = -1, track_id = NULL, matched = NULL
WHERE w.round = %(round)s AND EXISTS (
    SELECT 1 FROM writer_items e
    WHERE e.round = %(round)s AND e.track_id = w.track_id AND e.n < w.n)
"""
_PUSH_BACK = """
UPDATE writer_items
SET round = CASE WHEN round = -1 THEN %(round)s + 1 ELSE round + 1 END
WHERE round = -1 OR round > %(round)s
"""

_NEW_TRACKS = f"""
INSERT INTO writer_tracks (id, title_key, ord, is_new, source_n)
SELECT new_id, title_key, {NEW_TRACK_ORDER} + n, true, n FROM writer_items
WHERE round = %(round)s AND matched = 'new'
"""

# A stored row from before title keys (hand inserts, old scrapers) gets the key, and its
# credits, from the first item that reaches it, so that the title tier finds it from now on.
_FILL_TITLE_KEYS = """
UPDATE writer_tracks b SET title_key = i.title_key, source_n = i.n
FROM writer_items i
WHERE i.round = %(round)s AND i.track_id = b.id AND b.title_key IS NULL
"""

# ``conflicts.decide`` set-based, for one identifier column: the owner check first, then the
# stored value; otherwise the track gains the identifier.
_CLAIM = """
WITH claim AS MATERIALIZED (
    SELECT i.n, i.track_id, i.{column} AS incoming, b.{column} AS stored, o.id AS owner
    FROM writer_items i
    CROSS JOIN LATERAL (SELECT {column} FROM writer_tracks WHERE id = i.track_id LIMIT 1) AS b
    LEFT JOIN LATERAL (
        SELECT id FROM writer_tracks WHERE {column} = i.{column} ORDER BY ord LIMIT 1
    ) AS o ON true
    WHERE i.round = %(round)s AND i.{column} IS NOT NULL
      AND i.{column} IS DISTINCT FROM b.{column}
), recorded AS (
    INSERT INTO writer_conflicts
    SELECT n, %(kind)s, track_id,
           CASE WHEN owner IS NOT NULL AND owner <> track_id THEN owner END, stored, incoming,
           CASE WHEN owner IS NOT NULL AND owner <> track_id THEN %(on_other)s
                ELSE %(kept)s END
    FROM claim WHERE (owner IS NOT NULL AND owner <> track_id) OR stored IS NOT NULL
)
UPDATE writer_tracks b SET {column} = c.incoming
FROM claim c
WHERE b.id = c.track_id AND c.stored IS NULL AND (c.owner IS NULL OR c.owner = c.track_id)
"""

# The first track a spelling resolved to keeps it, as in track_lookup.
_NEW_SPELLINGS = """
INSERT INTO writer_spellings (raw_artist, raw_title, track_id, is_new)
SELECT raw_artist, raw_title, track_id, true FROM writer_items i
WHERE round = %(round)s AND NOT EXISTS (
    SELECT 1 FROM writer_spellings s
    WHERE s.raw_artist = i.raw_artist AND s.raw_title = i.raw_title LIMIT 1)
"""

_FOLLOW_LEADERS = """
UPDATE writer_items f SET track_id = l.track_id
FROM writer_items l WHERE f.round = 0 AND l.n = f.leader
"""


def load(
    cursor: psycopg2.extensions.cursor, tracks: Sequence[TrackRecord], slots: Sequence[Slot]
) -> None:
    """COPY the batch's track items into ``writer_items`` (``n`` their index), and their
    credits into ``writer_item_credits``, each with the id its artist gets if it is new."""
    copy_rows(
        cursor,
        "writer_items",
        _ITEM_COLUMNS,
        (
            (
                n,
                slot.round,
                slot.leader,
                new_id(),
                record.isrc,
                record.spotify_id,
                record.artist,
                record.title,
                record.title_key,
                record.title,
                record.normalized_title,
                record.is_remix,
                *map(record.values.get, _VALUE_COLUMNS),
                json.dumps(record.metadata) if record.metadata else None,
                record.enrichment_status,
            )
            for n, (record, slot) in enumerate(zip(tracks, slots, strict=True))
        ),
    )
    copy_rows(
        cursor,
        "writer_item_credits",
        _CREDIT_COLUMNS,
        (
            (n, ordinality, name, identity.artist_key(name), role, new_id())
            for n, (record, slot) in enumerate(zip(tracks, slots, strict=True))
            # Only the item that creates a track (or gives it its key) gives it credits.
            if slot.round
            for ordinality, (name, role) in enumerate(record.credits)
        ),
    )


def fetch_candidates(cursor: psycopg2.extensions.cursor) -> None:
    """Every stored track an item could match into ``writer_tracks``, oldest first, and the
    stored spellings of the batch into ``writer_spellings``."""
    cursor.execute(
        """
        INSERT INTO writer_spellings (raw_artist, raw_title, track_id, is_new)
        SELECT s.raw_artist, s.raw_title, l.track_id, false
        FROM (SELECT DISTINCT raw_artist, raw_title FROM writer_items WHERE round > 0) AS s
        -- LATERAL … LIMIT keeps these per-key index lookups: a join here would let the
        -- planner hash the whole table, a cost that grows with the catalogue.
        CROSS JOIN LATERAL (
            SELECT track_id FROM track_lookup
            WHERE raw_artist = s.raw_artist AND raw_title = s.raw_title LIMIT 1
        ) AS l
        """
    )
    cursor.execute(
        """
        WITH candidate AS (
            SELECT k.id FROM (SELECT DISTINCT isrc FROM writer_items WHERE round > 0) AS key
            CROSS JOIN LATERAL (
                SELECT id FROM tracks WHERE isrc = key.isrc LIMIT %(limit)s
            ) AS k
            UNION SELECT k.id
            FROM (SELECT DISTINCT spotify_id FROM writer_items WHERE round > 0) AS key
            CROSS JOIN LATERAL (
                SELECT id FROM tracks WHERE spotify_id = key.spotify_id LIMIT %(limit)s
            ) AS k
            UNION SELECT k.id
            FROM (SELECT DISTINCT title_key FROM writer_items WHERE round > 0) AS key
            CROSS JOIN LATERAL (
                SELECT id FROM tracks WHERE title_key = key.title_key LIMIT %(limit)s
            ) AS k
            UNION SELECT track_id FROM writer_spellings
        )
        INSERT INTO writer_tracks (id, isrc, spotify_id, title_key, ord, is_new)
        SELECT t.id, t.isrc, t.spotify_id, t.title_key,
               row_number() OVER (ORDER BY t.created_at, t.id), false
        FROM candidate c CROSS JOIN LATERAL (
            SELECT * FROM tracks WHERE tracks.id = c.id LIMIT 1
        ) AS t
        """,
        {"limit": CANDIDATES_PER_KEY},
    )


def resolve(cursor: psycopg2.extensions.cursor, rounds: int) -> None:
    """Every round of the tiers, then the followers."""
    claims = [
        sql.SQL(_CLAIM).format(column=sql.Identifier(column))
        for column in (IdentifierType.ISRC, IdentifierType.SPOTIFY_ID)
    ]
    round_ = 1
    while round_ <= rounds:
        parameters = {
            "round": round_,
            "on_other": ConflictResolution.KEPT_ON_OTHER_TRACK,
            "kept": ConflictResolution.KEPT_STORED,
        }
        cursor.execute(_MATCH, parameters)
        cursor.execute(_DEFER, parameters)
        if cursor.rowcount:
            cursor.execute(_PUSH_BACK, parameters)
            rounds += 1
        cursor.execute(_NEW_TRACKS, parameters)
        cursor.execute(_FILL_TITLE_KEYS, parameters)
        for kind, claim in zip(IdentifierType, claims, strict=True):
            cursor.execute(claim, {**parameters, "kind": kind})
        cursor.execute(_NEW_SPELLINGS, parameters)
        round_ += 1
    cursor.execute(_FOLLOW_LEADERS)


def outcomes(
    cursor: psycopg2.extensions.cursor, tracks: Sequence[TrackRecord], slots: Sequence[Slot]
) -> list[tuple[str, MatchTier]]:
    """Per item, in order: the track it resolved to and how it was matched."""
    cursor.execute("SELECT track_id::text, matched FROM writer_items ORDER BY n")
    return [
        (track_id, follower_tier(record) if slot.round == 0 else MatchTier(matched))
        for (track_id, matched), record, slot in zip(cursor.fetchall(), tracks, slots, strict=True)
    ]


def conflicts(cursor: psycopg2.extensions.cursor) -> list[Conflict]:
    """The identifier conflicts the rounds met, in item order, ISRC before Spotify ID."""
    cursor.execute(
        "SELECT identifier_type, track_id::text, other_track_id::text, stored_value,"
        " incoming_value, resolution FROM writer_conflicts"
        " ORDER BY n, identifier_type = 'spotify_id'"
    )
    return [
        Conflict(IdentifierType(kind), track, other, stored, incoming, ConflictResolution(how))
        for kind, track, other, stored, incoming, how in cursor.fetchall()
    ]
