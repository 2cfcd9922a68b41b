"""Apply or roll back the SQL migrations.

``python scripts/migrate.py [--lock-timeout SECONDS] [status | up [NAME] | apply NAME | down NAME]``

Exit status: 0 applied, skipped or rolled back; 1 a migration failed and was rolled back; 2 a
usage error (unknown migration name) or no database (bad ``DATABASE_URL``, server unreachable).
"""

from __future__ import annotations

import argparse
import os
import sys

from scrapers import metrics
from scrapers.db.server import migrations
from scrapers.db.server.connection import NO_DATABASE_ERRORS, one_line, resolve_database_url

PUSHGATEWAY_JOB = "tracklists_migrate"


def seconds(text: str) -> float:
    """A lock timeout in seconds (argparse answers anything else as a usage error, exit 2)."""
    try:
        return migrations.checked_lock_timeout(float(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--lock-timeout",
        type=seconds,
        metavar="SECONDS",
        help="how long a migration waits for locks other sessions hold (002's default: 60)",
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("status", help="list migrations and when each was applied")
    up = commands.add_parser("up", help="apply pending migrations (the default)")
    up.add_argument("target", nargs="?", help="stop after this migration")
    apply = commands.add_parser("apply", help="run one migration file (it skips if applied)")
    apply.add_argument("name")
    down = commands.add_parser("down", help="roll back one migration (the latest applied)")
    down.add_argument("name")
    args = parser.parse_args(argv)

    try:
        url = resolve_database_url()
        if args.command == "status":
            for name, applied_at in migrations.status(url):
                print(
                    f"{name:45} {applied_at:%Y-%m-%d %H:%M:%S}"
                    if applied_at
                    else f"{name:45} pending"
                )
        elif args.command == "apply":
            migrations.apply_one(url, args.name, on_notice=print, lock_timeout=args.lock_timeout)
        elif args.command == "down":
            migrations.downgrade(url, args.name, on_notice=print)
            print(f"Rolled back {args.name}")
        else:
            done = migrations.upgrade(
                url, getattr(args, "target", None), on_notice=print, lock_timeout=args.lock_timeout
            )
            print(f"Applied {', '.join(done)}" if done else "Nothing to apply: schema is current")
        push_pending(url)
    except NO_DATABASE_ERRORS as error:
        print(f"error: cannot use the database: {one_line(error)}", file=sys.stderr)
        return 2
    except migrations.UnknownMigration as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except migrations.MigrationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def push_pending(url: str) -> None:
    """With PROMETHEUS_PUSHGATEWAY_URL set, push how many migrations are still pending: a batch
    job has no /metrics to scrape. A push that fails is reported; the migration stands."""
    gateway = os.environ.get("PROMETHEUS_PUSHGATEWAY_URL")
    if not gateway:
        return
    metrics.MIGRATIONS_PENDING.set(sum(applied is None for _, applied in migrations.status(url)))
    try:
        metrics.push(gateway, PUSHGATEWAY_JOB, metrics.MIGRATION_REGISTRY)
    except OSError as error:
        print(f"warning: metrics not pushed to {gateway}: {error}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
