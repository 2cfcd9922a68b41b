"""Check that migration 002's uniqueness guarantees hold; a CI gate.

``python scripts/verify_isrc_uniqueness.py [--json] [--min-isrc-coverage PCT]``

Exit status: 0 every check passed (warnings allowed), 1 at least one check failed, 2 the
database could not be reached or the command was misused (the reason on stderr, one line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import closing

import psycopg2

from scrapers.db.maintenance.verify import MIGRATION, Report, verify
from scrapers.db.server.connection import (
    NO_DATABASE_ERRORS,
    connect,
    one_line,
    resolve_database_url,
)

SYMBOLS = {"pass": "✓", "warn": "⚠", "fail": "✗"}
RULE = "=" * 43
CONNECT_TIMEOUT_SECONDS = "10"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument(
        "--min-isrc-coverage",
        type=_percentage,
        metavar="PCT",
        help="fail when fewer than PCT%% of tracks have an ISRC (default: only warn below 50%%)",
    )
    args = parser.parse_args(argv)

    # libpq's own timeout: an unreachable host fails in seconds instead of hanging CI.
    os.environ.setdefault("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_SECONDS)
    try:
        url = resolve_database_url()
        with closing(connect(url)) as connection:
            report = verify(connection, args.min_isrc_coverage)
    except NO_DATABASE_ERRORS as error:
        print(f"error: cannot check the database: {one_line(error)}", file=sys.stderr)
        return 2
    except psycopg2.Error as error:
        reason = error.diag.message_primary or one_line(error)
        print(f"error: a check failed to run: {reason}", file=sys.stderr)
        return 1

    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        print_report(report)
    return 0 if report.passed else 1


def print_report(report: Report) -> None:
    print("ISRC Uniqueness Verification")
    print(f"Migration: {MIGRATION}")
    section = None
    for finding in report.findings:
        if finding.section != section:
            section = finding.section
            print(f"\n{RULE}\n{section} CHECK\n{RULE}")
        print(f"{SYMBOLS[finding.status]} {finding.message}")
    print()
    if report.passed:
        print("✓ ALL VERIFICATION CHECKS PASSED")
        print("Migration 002 is working correctly!")
    else:
        print(f"✗ {len(report.failures)} VERIFICATION CHECK(S) FAILED")


def _percentage(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100, got {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
