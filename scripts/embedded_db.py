"""Manage the embedded PostgreSQL server: ``python scripts/embedded_db.py [status|url|stop]``."""

from __future__ import annotations

import argparse
import sys

from scrapers.db.server.connection import DatabaseUrlError, resolve_database_url
from scrapers.db.server.embedded import EmbeddedDatabaseError, EmbeddedPostgres


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["status", "url", "stop"], nargs="?", default="status")
    args = parser.parse_args(argv)
    server = EmbeddedPostgres()
    try:
        if args.command == "url":
            print(resolve_database_url())
        elif args.command == "stop":
            print("stopped" if server.stop() else "not running")
        else:
            running = server.status()
            where = f"on 127.0.0.1:{running.port}" if running else "not running"
            print(f"embedded PostgreSQL in {server.state_dir}: {where}")
    except (EmbeddedDatabaseError, DatabaseUrlError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
