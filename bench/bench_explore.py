"""Time the explorer's queries on a generated catalogue against a primary-key lookup.

``python -m bench.bench_explore [--setlists 100000] [--rows 2000000] [--tracks 300000]``

Creates a throwaway database on the server DATABASE_URL names (else the embedded one), applies
every migration, loads a synthetic catalogue with COPY (seeded, so every run loads the same):

* tracks with two-word artist names and titles made of syllables (so trigram search meets text
  like real names), 70 % with an ISRC, BPM and a Camelot key on most; one spelling per track
  in ``track_lookup`` and one primary credit;
* setlists of 1 or 2 DJs out of 5,000, dated over five years, each a walk through the tracks:
  half the steps go to one of the current track's five "usual followers" (so transitions repeat,
  as DJs repeat them), the rest to a track drawn with a popularity skew (a few tracks are
  played in thousands of sets); 5 % "w/" rows, 8 % unknown rows, 1 % two-part mashups.

Then times, in the same run and on the same connection, ``--samples`` calls of each, sampling
tracks as a user meets them (a random played row's track, so popular tracks come up often):
* baseline: one track by primary key;
* neighbourhood: ``explore.neighbourhood`` (top 20 after, before and with);
* path: ``explore.build_path`` with up to 6 steps to a track reached by a random walk of 2 to 6
  real transitions (so a path exists);
* search: ``explore.search_tracks`` for a stored "artist title" with one typo;
and, with no target, the median of 3 runs of the whole-catalogue lists (top tracks, top
transitions of all sets and of one year). Prints p50 / p95 of each and their ratio to the
baseline, then drops the database.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import date, timedelta
from typing import Any

from psycopg2 import sql

from bench.generate_catalogue import foreign_keys_dropped
from bench.throwaway import throwaway_database
from scrapers.db import explore
from scrapers.db.server import migrations
from scrapers.db.server.connection import connect

SEED = 20
DJS = 5_000
USUAL_FOLLOWERS = 5
TARGETS_MS = {"neighbourhood": 30.0, "path": 300.0, "search": 50.0}
# Syllables from onsets, vowels and codas (about 2,000): names with as varied trigrams as real
# ones, so the trigram index meets realistic posting lists.
_ONSETS = ("b", "br", "c", "ch", "d", "dr", "f", "fl", "g", "gr", "h", "j", "k", "l", "m", "n")
_ONSETS += ("p", "pr", "r", "s", "sh", "st", "t", "tr", "v", "w", "z")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou")
_CODAS = ("", "n", "r", "s", "l", "m", "x", "nd", "st")
_SYLLABLES = tuple(
    onset + vowel + coda for onset in _ONSETS for vowel in _VOWELS for coda in _CODAS
)
COPY_CHUNK = 200_000
WHOLE_RUNS = 3
WHOLE_TIMEOUT_MS = 600_000
ONE_YEAR = explore.SetScope(since=date(2024, 1, 1), until=date(2024, 12, 31))


def word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))).capitalize()


def track_uuid(n: int) -> str:
    return str(uuid.UUID(int=(0x7E57 << 112) | n))


def load(url: str, setlists: int, rows: int, tracks: int) -> dict[str, Any]:
    """Load the synthetic catalogue; returns what the samples need (names, walks)."""
    rng = random.Random(SEED)
    artists = max(tracks // 10, 1)
    artist_names = [f"{word(rng)} {word(rng)}" for _ in range(artists)]
    titles = [f"{word(rng)} {word(rng)}" for _ in range(tracks)]
    keys = [f"{n}{letter}" for n in range(1, 13) for letter in "AB"]
    artist_of = [rng.randrange(artists) for _ in range(tracks)]

    def popular() -> int:
        return int(tracks * rng.random() ** 2)

    usual = [[popular() for _ in range(USUAL_FOLLOWERS)] for _ in range(tracks)]
    started = time.perf_counter()
    with closing(connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        with foreign_keys_dropped(cursor):
            _copy(
                cursor,
                "artists",
                ("id", "name", "normalized_name"),
                (
                    (track_uuid(10**8 + a), name, f"{name.lower()} {a}")
                    for a, name in enumerate(artist_names)
                ),
            )
            _copy(
                cursor,
                "tracks",
                ("id", "title", "normalized_title", "title_key", "isrc", "bpm", "key"),
                (
                    (
                        track_uuid(n),
                        titles[n],
                        titles[n].lower(),
                        f"{artist_names[artist_of[n]].lower()}::{titles[n].lower()}::{n}",
                        f"GBXBE{n:07d}" if n % 10 < 7 else None,
                        118 + n % 14 if n % 5 else None,
                        keys[n % 24] if n % 4 else None,
                    )
                    for n in range(tracks)
                ),
            )
            _copy(
                cursor,
                "track_artists",
                ("track_id", "artist_id", "role"),
                (
                    (track_uuid(n), track_uuid(10**8 + artist_of[n]), "primary")
                    for n in range(tracks)
                ),
            )
            _copy(
                cursor,
                "track_lookup",
                ("raw_artist", "raw_title", "track_id"),
                ((artist_names[artist_of[n]], titles[n], track_uuid(n)) for n in range(tracks)),
            )
            per_set = rows / setlists
            first_day = date(2021, 1, 1)
            dj_names = [f"DJ {word(rng)}" for _ in range(DJS)]
            set_rows: list[tuple[Any, ...]] = []

            def setlist_rows() -> Iterator[tuple[Any, ...]]:
                for s in range(setlists):
                    setlist = track_uuid(10**9 + s)
                    length = max(2, round(rng.gauss(per_set, per_set / 4)))
                    current = popular()
                    index = 0
                    while index < length:
                        roll = rng.random()
                        if roll < 0.08:
                            yield (setlist, index, index + 1, False, None, None)
                            current = popular()
                        elif roll < 0.13 and index:
                            yield (setlist, index, None, True, None, track_uuid(popular()))
                        elif roll < 0.14 and index + 2 < length:
                            yield (setlist, index, index + 1, False, None, track_uuid(current))
                            for part in (1, 2):
                                part_track = track_uuid(popular())
                                yield (setlist, index + part, None, False, index, part_track)
                            index += 2
                        else:
                            yield (setlist, index, index + 1, False, None, track_uuid(current))
                            current = (
                                rng.choice(usual[current]) if rng.random() < 0.5 else popular()
                            )
                        index += 1
                    set_rows.append(
                        (
                            setlist,
                            "bench",
                            str(s),
                            f"Set {s}",
                            "{"
                            + ",".join(
                                f'"{name}"' for name in rng.sample(dj_names, rng.randint(1, 2))
                            )
                            + "}",
                            first_day + timedelta(days=rng.randrange(5 * 365)),
                            "{" + rng.choice(["Techno", "House", "Trance", "Drum & Bass"]) + "}",
                        )
                    )

            _copy(
                cursor,
                "setlist_tracks",
                (
                    "setlist_id",
                    "row_index",
                    "position",
                    "played_with_previous",
                    "mashup_parent_row",
                    "track_id",
                ),
                setlist_rows(),
            )
            _copy(
                cursor,
                "setlists",
                ("id", "source", "source_id", "title", "djs", "set_date", "genres"),
                set_rows,
            )
        connection.commit()
        cursor.execute("SELECT count(*) FROM setlist_tracks")
        stored_rows = cursor.fetchone()[0]
    with closing(connect(url, autocommit=True)) as connection, connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return {
        "seconds": time.perf_counter() - started,
        "rows": stored_rows,
        "artist_names": artist_names,
        "titles": titles,
        "artist_of": artist_of,
    }


def _copy(cursor: Any, table: str, columns: tuple[str, ...], rows: Any) -> None:
    """COPY ``rows`` into ``table`` in chunks (text format; None is NULL)."""
    buffer = io.StringIO()

    def flush() -> None:
        buffer.seek(0)
        cursor.copy_expert(
            sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
            ),
            buffer,
        )
        buffer.seek(0)
        buffer.truncate()

    for count, row in enumerate(rows, start=1):
        buffer.write("\t".join(r"\N" if value is None else str(value) for value in row) + "\n")
        if count % COPY_CHUNK == 0:
            flush()
    flush()


def typo(text: str, rng: random.Random) -> str:
    """``text`` with two neighbouring letters of one word swapped."""
    words = text.split()
    candidates = [i for i, w in enumerate(words) if len(w) > 3]
    if not candidates:
        return text
    i = rng.choice(candidates)
    w = words[i]
    at = rng.randrange(1, len(w) - 2)
    words[i] = w[:at] + w[at + 1] + w[at] + w[at + 2 :]
    return " ".join(words)


def timed(samples: list[Any], call: Callable[[Any], Any]) -> list[float]:
    times = []
    for sample in samples:
        started = time.perf_counter()
        call(sample)
        times.append((time.perf_counter() - started) * 1000)
    return times


def percentile(times: list[float], share: float) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[round(share * 100) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setlists", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--tracks", type=int, default=300_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    args = parser.parse_args(argv)

    with throwaway_database("bench_explore", keep=args.keep) as url:
        migrations.upgrade(url, on_notice=lambda _: None)
        loaded = load(url, args.setlists, args.rows, args.tracks)
        print(
            f"catalogue: {args.setlists:,} setlists, {loaded['rows']:,} rows, "
            f"{args.tracks:,} tracks, loaded in {loaded['seconds']:.0f} s"
        )
        results = measure(url, loaded, args.samples)
    baseline = results.pop("baseline (primary key)")
    base50, base95 = percentile(baseline, 0.5), percentile(baseline, 0.95)
    print(f"{'query':<24} {'p50 ms':>8} {'p95 ms':>8} {'p95/baseline':>13} {'target':>8}")
    print(f"{'baseline (primary key)':<24} {base50:8.2f} {base95:8.2f} {1:13.0f}")
    missed = 0
    for label, times in results.items():
        if label not in TARGETS_MS:
            print(f"{label:<30} median {statistics.median(times):8.0f} ms over {len(times)} runs")
            continue
        p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
        target = TARGETS_MS[label]
        missed += p95 > target
        verdict = "" if p95 <= target else " MISSED"
        print(f"{label:<24} {p50:8.2f} {p95:8.2f} {p95 / base95:13.0f} {target:7.0f}{verdict}")
    return 1 if missed else 0


def measure(url: str, loaded: dict[str, Any], samples: int) -> dict[str, list[float]]:
    """Sample tracks and time each query ``samples`` times on one read-only connection."""
    rng = random.Random(SEED + 1)
    # The whole-catalogue lists are timed, not cut: a statement timeout of 10 minutes.
    with (
        explore.read_only(url, WHOLE_TIMEOUT_MS) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "SELECT track_id::text FROM setlist_tracks TABLESAMPLE SYSTEM (1) REPEATABLE (7) "
            "WHERE track_id IS NOT NULL LIMIT %s",
            (samples * 3,),
        )
        played = [row[0] for row in cursor.fetchall()]
        rng.shuffle(played)
        tracks = played[:samples]
        pairs = []
        for source in played[samples:]:
            target, steps = source, rng.randint(2, 6)
            for _ in range(steps):
                followers = explore.neighbourhood(connection, target, 5).followers
                if not followers:
                    break
                target = rng.choice(followers).track.id
            if target != source:
                pairs.append((source, target))
            if len(pairs) == samples:
                break
        titles, names, artist_of = loaded["titles"], loaded["artist_names"], loaded["artist_of"]
        queries = []
        for _ in range(samples):
            n = rng.randrange(len(titles))
            queries.append(typo(f"{names[artist_of[n]]} {titles[n]}", rng))
        connection.rollback()

        def pk(track: str) -> Any:
            cursor.execute("SELECT id, title, isrc FROM tracks WHERE id = %s::uuid", (track,))
            return cursor.fetchone()

        return {
            "baseline (primary key)": timed(tracks, pk),
            "neighbourhood": timed(tracks, lambda t: explore.neighbourhood(connection, t, 20)),
            "path": timed(pairs, lambda pair: explore.build_path(connection, *pair, max_steps=6)),
            "search": timed(queries, lambda q: explore.search_tracks(connection, q, 20)),
            # Whole-catalogue lists: no target, a few runs (each reads every played row).
            "top 20 tracks, all sets": timed(
                range(WHOLE_RUNS), lambda _: explore.top_tracks(connection)
            ),
            "top 20 transitions, all sets": timed(
                range(WHOLE_RUNS), lambda _: explore.top_transitions(connection)
            ),
            "top 20 transitions, one year": timed(
                range(WHOLE_RUNS), lambda _: explore.top_transitions(connection, ONE_YEAR)
            ),
        }


if __name__ == "__main__":
    sys.exit(main())
