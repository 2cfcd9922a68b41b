"""Start the web explorer: the catalogue in a browser, and as JSON under /api/.

    python scripts/web.py [--host H] [--port P] [-s NAME=VALUE ...]

Serves on 127.0.0.1:8087 by default (``EXPLORER_HOST`` / ``EXPLORER_PORT``). Reads
``EXPLORER_DATABASE_URL`` when set (a read-only role, a replica), else ``DATABASE_URL``, else the
embedded server; every request runs in a read-only transaction with a statement timeout
(``EXPLORER_STATEMENT_TIMEOUT_MS``). Settings come from ``scrapers/settings.py``; ``-s NAME=VALUE``
overrides one. Exit 0 when stopped (Ctrl-C, SIGTERM); 2 on an invalid setting or argument, a
database that cannot be used, or an address it cannot listen on (one line on stderr).
"""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import closing

from scrapers.db.server.connection import NO_DATABASE_ERRORS, connect, one_line, redacted
from scrapers.db.server.migrations import SchemaTooOld, require_current_schema
from scrapers.explorer.web.app import create_app
from scrapers.explorer.web.config import WebConfig
from scrapers.serving import Server, add_settings_option, command_settings, serve_until_stopped

logger = logging.getLogger("web")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    # --host and --port override their settings, so they are checked the one same way.
    parser.add_argument("--host", help="address to bind (default EXPLORER_HOST, 127.0.0.1)")
    parser.add_argument("--port", help="port, 0 to 65535 (default EXPLORER_PORT, 8087)")
    add_settings_option(parser)
    args = parser.parse_args(argv)
    settings = command_settings(args.overrides, EXPLORER_HOST=args.host, EXPLORER_PORT=args.port)
    try:
        config = WebConfig.from_settings(settings).with_database(settings)
        with closing(connect(config.database_url, autocommit=True)) as connection:
            require_current_schema(connection)
    except (ValueError, SchemaTooOld, *NO_DATABASE_ERRORS) as error:
        print(f"Cannot start: {one_line(error)}", file=sys.stderr)
        return 2
    app = create_app(config)
    try:
        server = Server(
            app,
            (config.host, config.port),
            request_timeout=config.request_timeout,
            max_connections=config.max_connections,
        )
    except OSError as error:  # the port is in use, or the host is not an address of this machine
        print(
            f"Cannot start: cannot listen on {config.host}:{config.port}: {one_line(error)}",
            file=sys.stderr,
        )
        return 2
    logger.info(
        "Web explorer on %s (database %s, read-only)", server.url, redacted(config.database_url)
    )
    try:
        serve_until_stopped(server, logger)
    finally:
        app.state.catalogue.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
