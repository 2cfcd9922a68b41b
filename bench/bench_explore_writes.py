"""What migration 011's indexes cost the batch writer: the same pages written without and with them.

``python -m bench.bench_explore_writes [--pages 600] [--rounds 4]``

Generates setlist pages (40 rows each, over 12,000 tracks; 8 % unknown rows, 5 % "w/" rows, as
the crawl hands them to the writer), then, ``--rounds`` times and alternating, writes all of them
through ``BatchWriter`` (50 pages a batch) into a fresh database migrated up to 009 (the
baseline: no explorer indexes) and into one with every migration. Prints each time and the
ratio of the medians.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from typing import Any

from bench.throwaway import throwaway_database
from scrapers.db.server import migrations
from scrapers.db.write.writer import BatchWriter
from tests.explore_pages import page_items

BASELINE = "009_import_row_digests"
PAGES_PER_BATCH = 50


def pages(count: int) -> list[list[Any]]:
    rng = random.Random(11)
    words = [f"{a}{b}{c}" for a in "bcdfglmnprstvz" for b in "aeiou" for c in "nrslx "]
    tracks = [
        " - ".join(" ".join(rng.choice(words).strip().capitalize() for _ in range(2)) for _ in "at")
        for _ in range(12_000)
    ]
    made = []
    for number in range(count):
        lines = [rng.choice(tracks) if rng.random() > 0.08 else "ID" for _ in range(40)]
        lines = [
            f"w/ {line}" if index and line != "ID" and rng.random() < 0.05 else line
            for index, line in enumerate(lines)
        ]
        made.append(page_items(f"w{number}", lines, djs=(f"DJ {number % 50}",)))
    return made


def time_writes(target: str | None, written: list[list[Any]]) -> float:
    with throwaway_database("bench_writes") as url:
        migrations.upgrade(url, target=target, on_notice=lambda _: None)
        started = time.perf_counter()
        with BatchWriter(url, origin="bench") as writer:
            for first in range(0, len(written), PAGES_PER_BATCH):
                writer.write(
                    [item for page in written[first : first + PAGES_PER_BATCH] for item in page]
                )
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    written = pages(args.pages)
    times: dict[str, list[float]] = {"without 011 (baseline)": [], "with 011": []}
    for _ in range(args.rounds):
        times["without 011 (baseline)"].append(time_writes(BASELINE, written))
        times["with 011"].append(time_writes(None, written))
    rows = args.pages * 40
    for label, seconds in times.items():
        shown = ", ".join(f"{s:.2f}" for s in seconds)
        print(f"{label:<24} median {statistics.median(seconds):6.2f} s  ({shown}); {rows:,} rows")
    ratio = statistics.median(times["with 011"]) / statistics.median(
        times["without 011 (baseline)"]
    )
    print(f"with / without: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
