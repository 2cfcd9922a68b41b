"""Benchmark of ``import_tracks``: bulk import against a per-row loop and a raw COPY, same run.

    python -m bench.bench_import                 # 1,000,000 rows (about 10 minutes here)
    python -m bench.bench_import --rows 50000    # a quick run
    python -m bench.bench_import --rows 200000 --format jsonl   # the imports read JSON lines

Steps, each on a fresh database of the server ``scrapers.db.server.connection`` resolves:

1. generate a CSV of ``--rows`` rows (``generate_import_file.py``: mixed identifiers, 30% repeats);
   with ``--format jsonl`` the imports of step 2 read the same rows as JSON lines (``to_jsonl``);
2. import it into an empty catalogue, then again into the now full one (the re-run case), each in
   a child process whose peak resident memory is measured; the same twice more with ``--bulk``;
   then, into each full catalogue, an *update*: a second file of the same rows with other
   descriptive values (``generate``'s variant 1), every track stored, every row changing it;
3. baseline (a): the same engine driven one row per transaction (a naive per-row upsert loop)
   over the first ``--sample`` rows, scaled to the full row count;
4. baseline (b): a raw ``COPY`` of the same file into an unindexed table of text columns;
5. reference (c): the schema's floor (``schema_floor``), the rows the import stored inserted
   set-based into an empty catalogue: PostgreSQL's share alone; (d) the same with the child
   tables' foreign keys dropped and added back, validated, before COMMIT (the ``--bulk`` floor).

Targets printed at the end: issue 22's (``--bulk`` 1M rows in at most 60 s and at least 0.5x the
floor of the same run, the shared mode at least 0.35x the floor, a re-import at least 4x faster
than the fresh import, peak memory at most 1 GB) and issue 6's (at least 0.3x the raw COPY rate).
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path

import psycopg2.extensions
from psycopg2 import sql

from bench.generate_import_file import generate
from bench.schema_floor import floor_seconds
from scrapers.db.server import migrations
from scrapers.db.server.connection import connect, resolve_database_url
from scrapers.db.write.writer import BatchWriter
from scrapers.importers.csv_reader import CsvReader
from scrapers.importers.driver import DEFAULT_BATCH_SIZE, Importer

TARGET_SECONDS_PER_MILLION = 60.0
TARGET_COPY_RATIO = 0.3
# Issue 22.
TARGET_PEAK_MB = 1000.0
TARGET_FLOOR_RATIO = 0.35
TARGET_BULK_FLOOR_RATIO = 0.5
TARGET_REIMPORT_SPEEDUP = 4.0


def import_in_child(
    url: str, path: Path, batch_size: int, fmt: str, *, bulk: bool = False
) -> dict[str, float]:
    """Run the import in a fresh process, so that its peak memory is the import's alone."""
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bench_import",
            "--child",
            url,
            str(path),
            "--batch-size",
            str(batch_size),
            "--format",
            fmt,
            *(["--bulk"] if bulk else []),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def child(url: str, path: Path, batch_size: int, fmt: str, bulk: bool) -> None:
    started = time.perf_counter()
    importer = Importer(url, batch_size=batch_size, interactive=False, log_every=3600, bulk=bulk)
    summary = importer.run([path], fmt)
    seconds = time.perf_counter() - started
    # The importer and its validation process, each at its own peak: an upper bound.
    peak_mb = sum(
        resource.getrusage(who).ru_maxrss / 1024
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    result = {
        "seconds": seconds,
        "rows": summary.read,
        "peak_mb": peak_mb,
        "inserted": summary.stored.inserted,
        "updated": summary.stored.updated,
        "duplicates": summary.duplicates,
        "rejected": summary.rejected,
    }
    print(json.dumps(result))


def to_jsonl(source: Path, target: Path) -> None:
    """The CSV's rows as JSON lines of the project's items: the fields a row has, numbers as
    JSON numbers (what a crawl's ``-O items.jsonl`` of tracks holds)."""
    with source.open(encoding="utf-8", newline="") as rows, target.open("w") as out:
        for row in csv.DictReader(rows):
            item: dict[str, str | int] = {name: value for name, value in row.items() if value}
            for name in ("duration_ms", "bpm"):
                if name in item:
                    item[name] = int(item[name])
            out.write(json.dumps(item) + "\n")


def naive_loop(url: str, sample: Path) -> tuple[int, float]:
    """One transaction per row through the same writer: what an unbatched importer does."""
    rows = 0
    started = time.perf_counter()
    with BatchWriter(url, origin="bench:naive") as writer:
        for row in CsvReader(sample).rows():
            if row.item is not None:
                writer.write([row.item], [row.location])
                rows += 1
    return rows, time.perf_counter() - started


def raw_copy(url: str, path: Path) -> float:
    columns = path.open(encoding="utf-8").readline().strip().split(",")
    definition = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in columns)
    with closing(connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE TABLE raw_copy ({})").format(definition))
        connection.commit()
        started = time.perf_counter()
        with path.open(encoding="utf-8") as handle:
            cursor.copy_expert("COPY raw_copy FROM STDIN WITH (FORMAT csv, HEADER true)", handle)
        connection.commit()
        return time.perf_counter() - started


class Databases:
    """Throwaway databases on the resolved server, dropped at the end."""

    def __init__(self) -> None:
        self.admin = psycopg2.extensions.make_dsn(resolve_database_url(), dbname="postgres")
        self.names: list[str] = []

    def create(self) -> str:
        name = f"bench_import_{uuid.uuid4().hex[:12]}"
        with closing(connect(self.admin, autocommit=True)) as admin, admin.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.names.append(name)
        url = psycopg2.extensions.make_dsn(self.admin, dbname=name)
        migrations.upgrade(url)
        return url

    def drop(self) -> None:
        with closing(connect(self.admin, autocommit=True)) as admin, admin.cursor() as cursor:
            for name in self.names:
                cursor.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000, help="rows of the per-row loop")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--file", type=Path, help="reuse a generated file instead")
    parser.add_argument(
        "--format", choices=("csv", "jsonl"), default="csv", help="what the imports read"
    )
    parser.add_argument("--child", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--bulk", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]), args.batch_size, args.format, args.bulk)
        return 0

    databases = Databases()
    with tempfile.TemporaryDirectory(prefix="bench_import_") as folder:
        path = args.file or Path(folder) / "catalogue.csv"
        if not args.file:
            started = time.perf_counter()
            generate(path, args.rows, 0.3, 6)
            print(f"generated {args.rows:,} rows in {time.perf_counter() - started:.1f} s: {path}")
        rows = sum(1 for _ in path.open(encoding="utf-8")) - 1
        changed_csv = Path(folder) / "changed.csv"
        generate(changed_csv, rows, 0.3, 6, variant=1)
        imported, changed = path, changed_csv
        if args.format == "jsonl":
            imported, changed = Path(folder) / "catalogue.jsonl", Path(folder) / "changed.jsonl"
            to_jsonl(path, imported)
            to_jsonl(changed_csv, changed)
        sample = Path(folder) / "sample.csv"
        with path.open(encoding="utf-8") as source, sample.open("w", encoding="utf-8") as out:
            for _ in range(min(args.sample, rows) + 1):
                out.write(source.readline())
        try:
            bulk_url = databases.create()
            empty = import_in_child(bulk_url, imported, args.batch_size, args.format)
            full = import_in_child(bulk_url, imported, args.batch_size, args.format)
            bulk_empty_url = databases.create()
            bulk_empty, bulk_full = (
                import_in_child(bulk_empty_url, imported, args.batch_size, args.format, bulk=True)
                for _ in range(2)
            )
            naive_rows, naive_seconds = naive_loop(databases.create(), sample)
            copy_seconds = raw_copy(databases.create(), path)
            floor, counts = floor_seconds(bulk_url, databases.create())
            floor_no_keys, _ = floor_seconds(bulk_url, databases.create(), foreign_keys=False)
            # After the floors, which copy the catalogue of the first import as it was.
            update = import_in_child(bulk_url, changed, args.batch_size, args.format)
            bulk_update = import_in_child(
                bulk_empty_url, changed, args.batch_size, args.format, bulk=True
            )
        finally:
            databases.drop()

    empty_rate = rows / empty["seconds"]
    naive_rate = naive_rows / naive_seconds
    copy_rate = rows / copy_seconds
    print(f"\nimport of {rows:,} rows, {args.format} (batch size {args.batch_size}):")
    runs = (
        ("into an empty catalogue", empty),
        ("again, into the full one", full),
        ("--bulk, empty catalogue", bulk_empty),
        ("--bulk again, full one", bulk_full),
        ("update, changed values", update),
        ("--bulk update", bulk_update),
    )
    for label, run in runs:
        print(
            f"  {label:26} {run['seconds']:7.1f} s  {rows / run['seconds']:9,.0f} rows/s"
            f"  peak {run['peak_mb']:5.0f} MB  ({run['inserted']:,} inserted, {run['updated']:,}"
            f" updated, {run['duplicates']:,} duplicate rows, {run['rejected']:,} rejected)"
        )
    print(
        f"  (a) per-row loop, {naive_rows:,} rows: {naive_seconds:.1f} s = {naive_rate:,.0f} rows/s"
        f", {rows / naive_rate:,.0f} s scaled to {rows:,} rows;"
        f" bulk import is {empty_rate / naive_rate:.1f}x faster"
    )
    print(
        f"  (b) raw COPY into an unindexed table: {copy_seconds:.1f} s = {copy_rate:,.0f} rows/s;"
        f" bulk import runs at {empty_rate / copy_rate:.2f}x of it"
    )
    stored = ", ".join(f"{count:,} {table}" for table, count in counts.items())
    print(
        f"  (c) schema floor, the stored rows inserted set-based ({stored}): {floor:.1f} s;"
        f" bulk import runs at {floor / empty['seconds']:.2f}x of it"
    )
    print(
        f"  (d) the same without per-row foreign-key checks (dropped, added back validated):"
        f" {floor_no_keys:.1f} s; --bulk runs at {floor_no_keys / bulk_empty['seconds']:.2f}x"
        f" of it and {floor / bulk_empty['seconds']:.2f}x of (c),"
        f" the shared mode at {floor / empty['seconds']:.2f}x of (c)"
    )
    print(
        f"  re-import of the same rows: shared mode {empty['seconds'] / full['seconds']:.1f}x"
        f" faster than its fresh import, --bulk {bulk_empty['seconds'] / bulk_full['seconds']:.1f}x"
    )
    print(
        f"  update of every stored track (a file of the same rows, other values): shared mode"
        f" {update['seconds']:.1f} s, --bulk {bulk_update['seconds']:.1f} s:"
        f" --bulk takes {bulk_update['seconds'] / update['seconds']:.2f}x the shared mode's time"
    )
    per_million = empty["seconds"] * 1_000_000 / rows
    bulk_per_million = bulk_empty["seconds"] * 1_000_000 / rows
    peak = max(run["peak_mb"] for _, run in runs)
    print("\ntargets:")
    print(
        f"  1M rows <= {TARGET_SECONDS_PER_MILLION:.0f} s: {per_million:.0f} s per 1M rows,"
        f" {verdict(per_million <= TARGET_SECONDS_PER_MILLION)}"
    )
    print(
        f"  --bulk, 1M rows <= {TARGET_SECONDS_PER_MILLION:.0f} s: {bulk_per_million:.0f} s per"
        f" 1M rows (floor without foreign keys {floor_no_keys * 1_000_000 / rows:.0f} s),"
        f" {verdict(bulk_per_million <= TARGET_SECONDS_PER_MILLION)}"
    )
    print(
        f"  shared mode >= {TARGET_FLOOR_RATIO}x the floor: {floor / empty['seconds']:.2f}x,"
        f" {verdict(floor / empty['seconds'] >= TARGET_FLOOR_RATIO)}"
    )
    print(
        f"  --bulk >= {TARGET_BULK_FLOOR_RATIO}x the floor: {floor / bulk_empty['seconds']:.2f}x"
        f" of (c), {floor_no_keys / bulk_empty['seconds']:.2f}x of (d),"
        f" {verdict(floor / bulk_empty['seconds'] >= TARGET_BULK_FLOOR_RATIO)}"
    )
    reimport = bulk_empty["seconds"] / bulk_full["seconds"]
    print(
        f"  re-import >= {TARGET_REIMPORT_SPEEDUP:.0f}x faster than the fresh import (--bulk):"
        f" {reimport:.1f}x, {verdict(reimport >= TARGET_REIMPORT_SPEEDUP)}"
    )
    print(
        f"  >= {TARGET_COPY_RATIO}x raw COPY: {empty_rate / copy_rate:.2f}x,"
        f" {verdict(empty_rate / copy_rate >= TARGET_COPY_RATIO)}"
    )
    print(
        f"  peak memory <= {TARGET_PEAK_MB:.0f} MB: {peak:.0f} MB,"
        f" {verdict(peak <= TARGET_PEAK_MB)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
