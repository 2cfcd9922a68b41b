"""Time migration 002 on a synthetic catalogue against the floor of building its indexes.

``python -m bench.bench_migration_002 [--tracks 1000000] [--duplicate-share 0.05]``

Creates a throwaway database on the server DATABASE_URL names (else the embedded one), loads
schema 001 and the catalogue (bench/generate_catalogue.py), then times, in the same run:
* migration 002 as the runner applies it (normalise, group, merge, re-point, audit, delete,
  unique and lookup indexes);
* the floor: the two CREATE UNIQUE INDEX statements alone, on a duplicate-free table of the
  same size, i.e. what adding the constraints costs when there is nothing to merge.
Prints tracks/s and the ratio, and drops the database.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from contextlib import closing

import psycopg2.extensions
from psycopg2 import sql

from bench.generate_catalogue import generate
from scrapers.db.server import migrations
from scrapers.db.server.connection import connect, resolve_database_url

TARGET_SECONDS_PER_MILLION = 60.0


def time_migration(url: str) -> float:
    started = time.perf_counter()
    migrations.upgrade(url, target="002_add_isrc_unique_constraints", on_notice=lambda _: None)
    return time.perf_counter() - started


def time_floor(url: str, tracks: int) -> float:
    """Both unique indexes on a same-size table of distinct identifiers, same coverage."""
    with closing(connect(url, autocommit=True)) as connection, connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE floor_tracks AS SELECT md5('f' || n)::uuid AS id, "
            "CASE WHEN n %% 10 < 7 THEN 'GBFLR' || lpad(n::text, 7, '0') END AS isrc, "
            "CASE WHEN n %% 10 < 5 THEN 'fl' || lpad(n::text, 20, '0') END AS spotify_id "
            "FROM generate_series(1, %s) n",
            (tracks,),
        )
        cursor.execute("VACUUM ANALYZE floor_tracks")
        started = time.perf_counter()
        cursor.execute(
            "BEGIN; SET LOCAL maintenance_work_mem = '512MB'; "
            "CREATE UNIQUE INDEX ON floor_tracks (isrc) WHERE isrc IS NOT NULL; "
            "CREATE UNIQUE INDEX ON floor_tracks (spotify_id) WHERE spotify_id IS NOT NULL; "
            "COMMIT"
        )
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=1_000_000)
    parser.add_argument("--duplicate-share", type=float, default=0.05)
    args = parser.parse_args(argv)

    admin_url = psycopg2.extensions.make_dsn(resolve_database_url(), dbname="postgres")
    name = f"bench_002_{uuid.uuid4().hex[:8]}"
    url = psycopg2.extensions.make_dsn(admin_url, dbname=name)
    with closing(connect(admin_url, autocommit=True)) as admin, admin.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        migrations.upgrade(url, target="001_initial_schema")
        catalogue = generate(url, args.tracks, args.duplicate_share)
        print(
            f"catalogue: {catalogue.tracks:,} tracks, {catalogue.duplicates:,} duplicates, "
            f"loaded in {catalogue.seconds:.1f} s"
        )
        migration_seconds = time_migration(url)
        with closing(connect(url)) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM deleted_duplicate_tracks")
            merged = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) FROM tracks")
            remaining = cursor.fetchone()[0]
        floor_seconds = time_floor(url, args.tracks)
    finally:
        with closing(connect(admin_url, autocommit=True)) as admin, admin.cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    target = TARGET_SECONDS_PER_MILLION * args.tracks / 1_000_000
    print(
        f"migration 002: {migration_seconds:.2f} s, {args.tracks / migration_seconds:,.0f} "
        f"tracks/s; merged {merged:,} duplicates, {remaining:,} tracks remain"
    )
    print(
        f"floor (2x CREATE UNIQUE INDEX, no duplicates): {floor_seconds:.2f} s, "
        f"{args.tracks / floor_seconds:,.0f} tracks/s"
    )
    print(f"ratio migration/floor: {migration_seconds / floor_seconds:.1f}x")
    verdict = "within" if migration_seconds <= target else "OVER"
    print(f"target: {target:.1f} s for {args.tracks:,} tracks: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
