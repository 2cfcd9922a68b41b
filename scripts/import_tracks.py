"""Bulk-import track exports into the catalogue.

``python scripts/import_tracks.py FILE... [--format auto|jsonl|csv|listenbrainz|spotify]
[--dry-run] [--bulk] [--reapply] [--batch-size N]``

Exit status: 0 when every file was read (rejected rows do not count as failure), 1 when a file
could not be read at all, 2 when the database could not be used, 130 when interrupted. An
interrupted import is finished by running the same command again (with ``--bulk``, an interrupted
file stored nothing and is loaded whole by running it again).

Ctrl-C and SIGTERM end it within seconds even in the middle of a long statement: the statement is
cancelled (with ``--bulk`` at once, otherwise once the batches handed to the writer had 2 s to
commit) and its transaction rolled back (``scrapers.importers.stopping``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

import psycopg2

from scrapers import metrics
from scrapers.db.server.connection import (
    NO_DATABASE_ERRORS,
    one_line,
    redacted,
    resolve_database_url,
)
from scrapers.db.write.writer import DatabaseUnavailable
from scrapers.importers.detect import FORMATS
from scrapers.importers.driver import DEFAULT_BATCH_SIZE, Importer
from scrapers.importers.stopping import SignalWatcher

PUSHGATEWAY_JOB = "tracklists_import"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--format", choices=("auto", *FORMATS), default="auto")
    parser.add_argument(
        "--dry-run", action="store_true", help="read and validate, report, write nothing"
    )
    parser.add_argument(
        "--bulk",
        action="store_true",
        help="load each file in one transaction, with the foreign keys of track_artists,"
        " track_lookup, setlist_tracks and identifier_conflicts dropped while loading and"
        " added back, validated, before COMMIT: faster for large files into a large catalogue,"
        " and a crash or an error stores nothing of the file. WHILE IT RUNS, OTHER WRITERS AND"
        " READERS OF THE CATALOGUE (a crawl, the enrichment service, queries) WAIT; it first"
        " waits, with a progress line, for those already running. Ctrl-C or SIGTERM cancels it"
        " at once, storing nothing",
    )
    parser.add_argument(
        "--reapply",
        action="store_true",
        help="apply rows an earlier import stored again, through the merge rule (say after a"
        " track was edited by hand); by default they are skipped unvalidated and counted as known",
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N")
    parser.add_argument(
        "--log-every",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="progress line interval when stderr is not a terminal",
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # `kill` ends the import like Ctrl-C: reading stops, handed-over batches commit, summary shown;
    # a statement that would keep it waiting is cancelled by ``SignalWatcher`` (below).
    # SIGINT is installed too: Python leaves it ignored when the import was started with it ignored
    # (`import_tracks.py ... &` in a script, a test run in the background), and then Ctrl-C or
    # `kill -INT` would be lost and the import would run on to exit 0 (as `scrapy crawl` does not).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)

    url = None
    try:
        if not args.dry_run:
            url = resolve_database_url()
            logging.getLogger("scrapers.importers").info("importing into %s", redacted(url))
        importer = Importer(
            url,
            dry_run=args.dry_run,
            batch_size=args.batch_size,
            log_every=args.log_every,
            bulk=args.bulk,
            reapply=args.reapply,
        )
        with SignalWatcher(importer.interrupt):
            summary = importer.run(args.files, args.format)
    except (*NO_DATABASE_ERRORS, DatabaseUnavailable, psycopg2.Error) as error:
        print(f"import_tracks: database error: {one_line(error)}", file=sys.stderr)
        return 2
    print("\n".join(summary.lines()))
    pushgateway = os.environ.get("PROMETHEUS_PUSHGATEWAY_URL")
    if pushgateway and not args.dry_run:
        metrics.push(pushgateway, PUSHGATEWAY_JOB)
    if summary.interrupted:
        return 130
    return 1 if summary.failed_files else 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
