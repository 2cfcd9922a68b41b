"""Two processes writing overlapping items at the same time: no duplicates, no errors."""

from __future__ import annotations

import multiprocessing
import random
from contextlib import closing
from typing import Any

import pytest

from scrapers.db.server.connection import connect
from scrapers.db.write.writer import BatchWriter

ARTISTS = [f"Artist {n}" for n in range(40)]


def overlapping_items() -> list[dict[str, Any]]:
    """One catalogue seen by both writers: title-only rows, Spotify-only and ISRC rows."""
    items = []
    for n in range(600):
        item: dict[str, Any] = {
            "artist_name": f"{ARTISTS[n % 40]} feat. {ARTISTS[(n * 7) % 40]}",
            "track_name": f"Song {n % 300}" + (" (Extended Mix)" if n % 3 == 0 else ""),
        }
        if n % 5 == 0:
            item["isrc"] = f"GBAYE{n % 300:07d}"
        elif n % 7 == 0:
            item["spotify_id"] = f"{n % 300:022d}"
        items.append(item)
    return items


def write_shuffled(url: str, seed: int, start: Any, errors: Any) -> None:
    items = overlapping_items()
    random.Random(seed).shuffle(items)
    start.wait()
    try:
        with BatchWriter(url, origin=f"test:process{seed}", retry_timeout=30) as writer:
            for offset in range(0, len(items), 50):
                writer.write(items[offset : offset + 50])
    except Exception as error:
        errors.put(repr(error))
        raise


def catalogue(url: str) -> tuple[list[tuple], int, int]:
    """Tracks by (title key, ISRC, Spotify ID), and the counts that must not double."""
    with closing(connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT title_key, isrc, spotify_id FROM tracks ORDER BY title_key, isrc, spotify_id"
        )
        tracks = cursor.fetchall()
        cursor.execute("SELECT count(*) FROM artists")
        artists = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM (SELECT title_key FROM tracks WHERE isrc IS NULL"
            " AND spotify_id IS NULL GROUP BY 1 HAVING count(*) > 1) AS doubled"
        )
        return tracks, artists, cursor.fetchone()[0]


@pytest.mark.slow
def test_three_processes_writing_the_same_catalogue(make_database) -> None:
    concurrent_url, sequential_url = make_database(), make_database()
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    errors = context.Queue()
    workers = [
        context.Process(target=write_shuffled, args=(concurrent_url, seed, start, errors))
        for seed in (1, 2, 3)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    assert errors.empty()

    # The reference: the same items written once, by one writer.
    with BatchWriter(sequential_url, origin="test:sequential") as writer:
        writer.write(overlapping_items())
    tracks, artists, doubled = catalogue(concurrent_url)
    assert doubled == 0
    assert artists == 40
    reference, _, _ = catalogue(sequential_url)
    # Which spelling names a track depends on arrival order; what exists may not.
    assert len(tracks) == len(reference)
    for position in (1, 2):
        assert sorted(str(t[position]) for t in tracks) == sorted(
            str(t[position]) for t in reference
        )
