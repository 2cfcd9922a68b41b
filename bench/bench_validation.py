"""Cost of validating one row (``records.to_record``): ``python -m bench.bench_validation``.

    python -m bench.bench_validation                  # 100,000 rows
    python -m bench.bench_validation --profile 25     # instead: cProfile's 25 costliest functions

Rows come from ``generate_import_file.py`` (mixed identifiers, 30% repeats) read by the importer's
own ``CsvReader``, so they are the dicts the writer gets. Printed, in µs of CPU per row (this
process's CPU time: on a shared machine wall time measures the neighbours too):

- baseline: ``json.dumps(dict(item))``, a copy and a serialisation of each item: a yardstick
  measured in the same run, so that the ratio means something on a loaded machine;
- first pass: ``to_record`` over all rows once, caches cold, as an import sees them;
- repeat pass: the same again with every spelling already seen (a re-import in one process).

All run with the garbage collector set as the importer's validation worker sets it
(``scrapers.db.write.garbage``). Baseline and repeat figures are the best of ``--repeat`` runs
(other processes only ever add time). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.generate_import_file import generate
from scrapers.db.write import records
from scrapers.db.write.fields import Rejected
from scrapers.db.write.garbage import rare_collection
from scrapers.importers.csv_reader import CsvReader


def read_items(rows: int, repeat_share: float, seed: int) -> list[dict[str, Any]]:
    """The items the importer hands the writer for a generated catalogue of ``rows`` rows."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "catalogue.csv"
        generate(path, rows, repeat_share, seed)
        return [row.item for row in CsvReader(path).rows() if row.item is not None]


def baseline(items: Sequence[dict[str, Any]]) -> None:
    for item in items:
        json.dumps(dict(item), default=str)


def validate(items: Sequence[dict[str, Any]]) -> None:
    rejected = 0
    for item in items:
        try:
            records.to_record(item)
        except Rejected:
            rejected += 1
    if rejected:
        raise SystemExit(f"{rejected} generated rows were rejected: the bench measures nothing")


def per_row_us(action: Callable[[], object], rows: int, repeat: int) -> float:
    """Best of ``repeat`` runs, in microseconds of CPU per row."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        action()
        best = min(best, time.process_time() - started)
    return best / rows * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat-share", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)

    items = read_items(args.rows, args.repeat_share, args.seed)
    count = len(items)
    with rare_collection():
        if args.profile:
            # A first pass, caches cold: what an import pays.
            profiler = cProfile.Profile()
            profiler.runcall(validate, items)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
            return 0
        base = per_row_us(lambda: baseline(items), count, args.repeat)
        first = per_row_us(lambda: validate(items), count, 1)
        again = per_row_us(lambda: validate(items), count, args.repeat)
    print(f"rows: {count:,}")
    print(f"baseline (dict copy + json.dumps): {base:6.2f} µs/row")
    print(f"to_record, first pass:             {first:6.2f} µs/row  ({first / base:.2f}x baseline)")
    print(f"to_record, repeat pass:            {again:6.2f} µs/row  ({again / base:.2f}x baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
