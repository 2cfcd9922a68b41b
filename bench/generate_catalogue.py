"""Fill a database (schema 001, before 002) with a synthetic catalogue, in SQL, fast.

``python -m bench.generate_catalogue --tracks 100000 --duplicate-share 0.05`` loads into
DATABASE_URL (else the embedded server's database). Everything is made by generate_series
inside PostgreSQL, set-based: no row crosses the wire.

Shape, for N tracks and duplicate share d:
* (1-d)·N originals. By id modulo 10: 3/10 carry an ISRC and a Spotify ID, 4/10 an ISRC only,
  2/10 a Spotify ID only, 1/10 neither (ISRC coverage 70 %, Spotify 50 %).
* d·N duplicates, in pairs on originals that carry both identifiers: the first copy has the
  ISRC only (every fourth pair spelled in lower case with hyphens, as scrapers write it), the
  second the Spotify ID only: A(I) + B(I,S) + C(S), the overlapping group migration 002 must
  merge as one. Pairs that land on the same original make larger groups. Duplicates carry a
  BPM the original lacks, so the merge has metadata to move.
* Relationships: one primary artist per track (duplicates share their original's, so the merge
  meets credits the keeper already has), a featured artist on every fourth track, two setlist
  positions per track on average, and one lookup-cache row per track.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

from psycopg2 import sql

from scrapers.db.server.connection import connect, resolve_database_url

# Track n's id: md5 of its number, so relationships can be generated without a lookup.
TRACK_ID = "md5('t' || ({n}))::uuid"
ROWS_PER_SETLIST = 40


@dataclass(frozen=True)
class Catalogue:
    tracks: int
    originals: int
    duplicates: int
    seconds: float


def generate(url: str, tracks: int, duplicate_share: float) -> Catalogue:
    """Load the catalogue into ``url`` in one transaction; the schema must be at 001."""
    duplicates = 2 * round(tracks * duplicate_share / 2)
    originals = tracks - duplicates
    if originals < 10:
        raise ValueError("need at least 10 original tracks")
    artists = max(originals // 10, 1)
    started = time.perf_counter()
    with closing(connect(url)) as connection, connection, connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '256MB'; SET LOCAL synchronous_commit = off")
        with foreign_keys_dropped(cursor):
            _fill(cursor, originals, duplicates, artists)
    with closing(connect(url, autocommit=True)) as connection, connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return Catalogue(tracks, originals, duplicates, time.perf_counter() - started)


@contextmanager
def foreign_keys_dropped(cursor: Any) -> Iterator[None]:
    """Drop every foreign key of the schema for a bulk load, and add each back after it.

    Foreign keys are checked row by row on insert; dropped and re-added, each is checked once,
    set-based. Same names and definitions, so the schema ends as the migrations left it.
    """
    cursor.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
        "FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace"
    )
    foreign_keys = cursor.fetchall()
    for table, name, _ in foreign_keys:
        cursor.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(table), sql.Identifier(name)
            )
        )
    yield
    for table, name, definition in foreign_keys:
        cursor.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
                sql.Identifier(table), sql.Identifier(name)
            )
            + sql.SQL(definition)
        )


def _fill(cursor: Any, originals: int, duplicates: int, artists: int) -> None:
    """Every table of the catalogue, by generate_series."""
    params = {"originals": originals, "duplicates": duplicates, "artists": artists}
    cursor.execute(
        f"""
        INSERT INTO artists (id, name, normalized_name)
        SELECT md5('a' || a)::uuid, 'Artist ' || a, 'artist ' || a
        FROM generate_series(1, %(artists)s) a;

        INSERT INTO tracks (id, title, normalized_title, title_key, isrc, spotify_id,
                            duration_ms, created_at)
        SELECT {TRACK_ID.format(n="n")}, 'Track ' || n, 'track ' || n,
               'artist ' || (n %% %(artists)s + 1) || '::track ' || n,
               CASE WHEN (n - 1) %% 10 < 7 THEN 'GBBEN' || lpad(n::text, 7, '0') END,
               CASE WHEN (n - 1) %% 10 < 3 OR (n - 1) %% 10 IN (7, 8)
                    THEN 'sp' || lpad(n::text, 20, '0') END,
               180000 + n %% 240000,
               timestamptz '2025-01-01' + n * interval '1 second'
        FROM generate_series(1, %(originals)s) n;

        -- Duplicate k copies original b: pairs (2j-1, 2j) share an original whose
        -- (b - 1) %% 10 is 0..2, i.e. one carrying both identifiers.
        CREATE TEMP TABLE copies ON COMMIT DROP AS
        SELECT k, j, 10 * ((j * 7919) %% greatest(%(originals)s / 10, 1)) + 1 + j %% 3 AS b
        FROM generate_series(1::bigint, %(duplicates)s) k,
             LATERAL (SELECT (k + 1) / 2 AS j) pair;

        INSERT INTO tracks (id, title, normalized_title, title_key, isrc, spotify_id,
                            bpm, created_at)
        SELECT {TRACK_ID.format(n="%(originals)s + k")}, 'Track ' || b || ' (copy)',
               'track ' || b, 'artist ' || (b %% %(artists)s + 1) || '::track ' || b,
               CASE WHEN k %% 2 = 1 AND j %% 4 = 0
                        THEN 'gb-ben-' || substr(lpad(b::text, 7, '0'), 1, 2) || '-'
                             || substr(lpad(b::text, 7, '0'), 3)
                    WHEN k %% 2 = 1 THEN 'GBBEN' || lpad(b::text, 7, '0') END,
               CASE WHEN k %% 2 = 0 THEN 'sp' || lpad(b::text, 20, '0') END,
               120 + k %% 10,
               timestamptz '2026-01-01' + k * interval '1 second'
        FROM copies;

        INSERT INTO track_artists (track_id, artist_id, role)
        SELECT {TRACK_ID.format(n="n")}, md5('a' || (n %% %(artists)s + 1))::uuid, 'primary'
        FROM generate_series(1, %(originals)s) n
        UNION ALL
        SELECT {TRACK_ID.format(n="%(originals)s + k")},
               md5('a' || (b %% %(artists)s + 1))::uuid, 'primary'
        FROM copies;
        INSERT INTO track_artists (track_id, artist_id, role)
        SELECT {TRACK_ID.format(n="n")},
               md5('a' || ((n * 31) %% %(artists)s + 1))::uuid, 'featured'
        FROM generate_series(4::bigint, %(originals)s + %(duplicates)s, 4) n;

        INSERT INTO setlists (id, source, source_id, title)
        SELECT md5('s' || s)::uuid, 'bench', s::text, 'Set ' || s
        FROM generate_series(0, (2 * (%(originals)s + %(duplicates)s)) / {ROWS_PER_SETLIST}) s;
        INSERT INTO setlist_tracks (setlist_id, row_index, position, track_id)
        SELECT md5('s' || (m / {ROWS_PER_SETLIST}))::uuid, m %% {ROWS_PER_SETLIST},
               m %% {ROWS_PER_SETLIST} + 1,
               {TRACK_ID.format(n="(m * 48271) %% (%(originals)s + %(duplicates)s) + 1")}
        FROM generate_series(0::bigint, 2 * (%(originals)s + %(duplicates)s) - 1) m;

        INSERT INTO track_lookup (raw_artist, raw_title, track_id)
        SELECT 'Artist ' || n, 'Track ' || n, {TRACK_ID.format(n="n")}
        FROM generate_series(1, %(originals)s + %(duplicates)s) n;
        """,
        params,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--duplicate-share", type=float, default=0.05)
    args = parser.parse_args(argv)
    catalogue = generate(resolve_database_url(), args.tracks, args.duplicate_share)
    print(
        f"Loaded {catalogue.tracks:,} tracks ({catalogue.duplicates:,} duplicates) "
        f"in {catalogue.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
