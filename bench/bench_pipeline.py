"""Throughput of the batch writer against two references measured in the same run.

    python -m bench.bench_pipeline [--items 200000] [--batch-size 5000] [--naive-sample 5000]

Items are synthetic plan-shape dicts: 10% carry an ISRC, 10% only a Spotify ID, the rest only
artist and title, and 30% repeat an earlier item (another spelling of the same line, or the same
line again), as a re-crawl or an overlapping export would. References:

* naive: one ``INSERT … ON CONFLICT`` round trip per item (conflict target by identifier),
  timed on a sample and scaled;
* ceiling: a raw COPY of the same rows into a table without indexes;
* floor: the rows the writer stored, inserted set-based into the real schema from temporary
  tables (``schema_floor``): what PostgreSQL alone needs, with no resolution work at all.

Each runs in a fresh database created on the server ``scrapers.db.server.connection`` resolves and
dropped at the end. Peak RSS is printed after each fifth of the items: flat means memory does
not grow with the number of items.
"""

from __future__ import annotations

import argparse
import io
import random
import resource
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from bench.schema_floor import floor_seconds
from scrapers import identity
from scrapers.db.server import migrations
from scrapers.db.server.connection import connect, resolve_database_url
from scrapers.db.write.writer import BatchWriter
from scrapers.importers.overlap import OverlappedWriter

VERSIONS = ("", " (Extended Mix)", " (Radio Edit)", " (Original Mix)", " (Dub Mix)")
SPELLINGS = (
    lambda a, t: (a, t),
    lambda a, t: (a.upper(), t.lower()),
    lambda a, t: (a.replace(" feat. ", " ft. "), t + " "),
)


def synthetic_items(count: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """A stream of items; repeats are drawn from a bounded window, so memory stays flat."""
    rng = random.Random(seed)
    recent: list[dict[str, Any]] = []
    for n in range(count):
        if recent and rng.random() < 0.30:
            item = dict(rng.choice(recent))
            item["artist_name"], item["track_name"] = rng.choice(SPELLINGS)(
                item["artist_name"], item["track_name"]
            )
        else:
            artist = f"Artist {rng.randrange(count // 8 + 1)}"
            if rng.random() < 0.2:
                artist += f" feat. Singer {rng.randrange(500)}"
            item = {
                "artist_name": artist,
                "track_name": f"Track {n}{rng.choice(VERSIONS)}",
                "bpm": rng.choice((None, 124, 126, 128, 140)),
            }
            kind = rng.random()
            if kind < 0.10:
                item["isrc"] = f"GB{n % 1000:03d}{n:07d}"[:12]
            elif kind < 0.20:
                item["spotify_id"] = f"{n:022d}"
            recent.append(item)
            if len(recent) > 10_000:
                recent.pop(rng.randrange(len(recent)))
        yield item


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fresh_database(server_url: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with closing(connect(server_url, autocommit=True)) as admin, admin.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg2.extensions.make_dsn(server_url, dbname=name)
    migrations.upgrade(url)
    return url


def drop_database(server_url: str, url: str) -> None:
    name = psycopg2.extensions.parse_dsn(url)["dbname"]
    with closing(connect(server_url, autocommit=True)) as admin, admin.cursor() as cursor:
        cursor.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def bench_writer(url: str, count: int, batch_size: int) -> float:
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    checkpoints = {count * k // 5 for k in range(1, 6)}
    pending = []
    with OverlappedWriter(BatchWriter(url, origin="bench")) as writer:
        # submit: batch n+1 is validated while batch n is in PostgreSQL.
        for n, item in enumerate(synthetic_items(count), start=1):
            batch.append(item)
            if len(batch) >= batch_size:
                pending.append(writer.submit(batch))
                batch = []
            if n in checkpoints:
                print(f"  writer: {n:>9,} items, peak RSS {peak_rss_mb():7.1f} MB", flush=True)
        if batch:
            pending.append(writer.submit(batch))
        stored = sum(future.result().stored for future in pending)
    assert stored == count, f"stored {stored} of {count}"
    return time.perf_counter() - started


NAIVE_UPSERT = {
    "isrc": "ON CONFLICT (isrc) WHERE isrc IS NOT NULL DO UPDATE SET"
    " bpm = coalesce(EXCLUDED.bpm, tracks.bpm), updated_at = now()",
    "spotify_id": "ON CONFLICT (spotify_id) WHERE spotify_id IS NOT NULL DO UPDATE SET"
    " bpm = coalesce(EXCLUDED.bpm, tracks.bpm), updated_at = now()",
    "title": "ON CONFLICT DO NOTHING",
}


def bench_naive(url: str, sample: int) -> float:
    """One INSERT … ON CONFLICT round trip per item, committed at the end."""
    with closing(connect(url)) as connection, connection.cursor() as cursor:
        started = time.perf_counter()
        for item in synthetic_items(sample):
            isrc = identity.normalize_isrc(item.get("isrc"))
            spotify_id = identity.normalize_spotify_id(item.get("spotify_id"))
            target = "isrc" if isrc else "spotify_id" if spotify_id else "title"
            cursor.execute(
                "INSERT INTO tracks (title, normalized_title, title_key, isrc, spotify_id, bpm)"
                " VALUES (%s, %s, %s, %s, %s, %s) " + NAIVE_UPSERT[target],
                (
                    item["track_name"],
                    identity.normalized_title(item["track_name"]),
                    identity.title_key(item["artist_name"], item["track_name"]),
                    isrc,
                    spotify_id,
                    item.get("bpm"),
                ),
            )
        connection.commit()
        return time.perf_counter() - started


# The same rows the writer stores (track, artists, credits, lookup), still one round trip per
# item: one statement whose data-modifying CTEs write all four tables.
NAIVE_SAME_ROWS = """
WITH track AS (
    INSERT INTO tracks (title, normalized_title, title_key, isrc, spotify_id, bpm)
    VALUES (%(title)s, %(normalized_title)s, %(title_key)s, %(isrc)s, %(spotify_id)s, %(bpm)s)
    {upsert}
    RETURNING id
), artist AS (
    INSERT INTO artists (normalized_name, name)
    SELECT * FROM unnest(%(keys)s::text[], %(names)s::text[])
    ON CONFLICT (normalized_name) DO UPDATE SET name = artists.name
    RETURNING id, normalized_name
), credit AS (
    INSERT INTO track_artists (track_id, artist_id, role, position)
    SELECT track.id, artist.id, c.role, c.position
    FROM track, unnest(%(credit_keys)s::text[], %(roles)s::text[], %(positions)s::int[])
        AS c (key, role, position)
    JOIN artist ON artist.normalized_name = c.key
    ON CONFLICT DO NOTHING
)
INSERT INTO track_lookup (raw_artist, raw_title, track_id)
SELECT %(artist)s, %(title)s, id FROM track
ON CONFLICT DO NOTHING
"""


def bench_naive_same_rows(url: str, sample: int) -> float:
    """One statement per item writing what the writer writes, committed at the end."""
    with closing(connect(url)) as connection, connection.cursor() as cursor:
        started = time.perf_counter()
        for item in synthetic_items(sample):
            artist, title = item["artist_name"], item["track_name"]
            isrc = identity.normalize_isrc(item.get("isrc"))
            spotify_id = identity.normalize_spotify_id(item.get("spotify_id"))
            target = "isrc" if isrc else "spotify_id" if spotify_id else "title"
            credits = identity.credits_for(artist, title)
            names = {identity.artist_key(name): name for name, _ in credits}
            cursor.execute(
                NAIVE_SAME_ROWS.format(upsert=NAIVE_UPSERT[target]),
                {
                    "title": title,
                    "normalized_title": identity.normalized_title(title),
                    "title_key": identity.title_key(artist, title),
                    "isrc": isrc,
                    "spotify_id": spotify_id,
                    "bpm": item.get("bpm"),
                    "keys": list(names),
                    "names": list(names.values()),
                    "credit_keys": [identity.artist_key(name) for name, _ in credits],
                    "roles": [role for _, role in credits],
                    "positions": list(range(len(credits))),
                    "artist": artist,
                },
            )
        connection.commit()
        return time.perf_counter() - started


def bench_copy(url: str, count: int, batch_size: int) -> float:
    """The ceiling: the same rows COPYed into a table without any index or constraint."""
    with closing(connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE copy_ceiling (title text, artist text, isrc text, spotify_id text,"
            " bpm numeric)"
        )
        connection.commit()
        started = time.perf_counter()
        items = synthetic_items(count)
        while True:
            buffer = io.StringIO()
            for _, item in zip(range(batch_size), items, strict=False):
                values = (
                    item["track_name"],
                    item["artist_name"],
                    item.get("isrc"),
                    item.get("spotify_id"),
                    item.get("bpm"),
                )
                buffer.write("\t".join("\\N" if v is None else str(v) for v in values) + "\n")
            if not buffer.tell():
                break
            buffer.seek(0)
            cursor.copy_expert("COPY copy_ceiling FROM STDIN", buffer)
            connection.commit()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--naive-sample", type=int, default=5_000)
    args = parser.parse_args()

    server_url = psycopg2.extensions.make_dsn(resolve_database_url(), dbname="postgres")
    databases = [fresh_database(server_url) for _ in range(5)]
    try:
        print(f"{args.items:,} items, batches of {args.batch_size:,}")
        writer_seconds = bench_writer(databases[0], args.items, args.batch_size)
        naive_sample = min(args.naive_sample, args.items)
        naive_seconds = bench_naive(databases[1], naive_sample) * args.items / naive_sample
        same_rows_seconds = (
            bench_naive_same_rows(databases[4], naive_sample) * args.items / naive_sample
        )
        copy_seconds = bench_copy(databases[2], args.items, args.batch_size)
        floor, counts = floor_seconds(databases[0], databases[3])
    finally:
        for url in databases:
            drop_database(server_url, url)

    def rate(seconds: float) -> float:
        return args.items / seconds

    print(f"batch writer        {writer_seconds:8.2f} s  {rate(writer_seconds):10,.0f} items/s")
    print(
        f"naive per-item loop {naive_seconds:8.2f} s  {rate(naive_seconds):10,.0f} items/s"
        f"  (measured on {naive_sample:,} items, scaled)"
    )
    print(
        f"naive, same rows    {same_rows_seconds:8.2f} s  {rate(same_rows_seconds):10,.0f} items/s"
        "  (track, artists, credits, lookup: one statement per item)"
    )
    print(f"raw COPY, no index  {copy_seconds:8.2f} s  {rate(copy_seconds):10,.0f} items/s")
    stored = ", ".join(f"{count:,} {table}" for table, count in counts.items())
    print(f"schema floor        {floor:8.2f} s  {rate(floor):10,.0f} items/s  ({stored})")
    print(f"writer / naive loop: {naive_seconds / writer_seconds:5.1f}x  (target >= 15x)")
    print(f"writer / naive loop writing the same rows: {same_rows_seconds / writer_seconds:5.1f}x")
    print(f"writer / raw COPY:   {copy_seconds / writer_seconds:5.2f}x  (target >= 0.3x)")
    print(f"writer / floor:      {floor / writer_seconds:5.2f}x  (1.0 = PostgreSQL's share alone)")
    print(f"peak RSS: {peak_rss_mb():.1f} MB")


if __name__ == "__main__":
    main()
