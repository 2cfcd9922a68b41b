"""Where the catalogue lives: the one place that answers it.

``DATABASE_URL`` (environment first, then the Scrapy setting of the same name) names a libpq
URL. Without one, the embedded server (``scrapers.db.embedded``) is started or reused and the
``tracklists`` database on it is used. Scripts, the spider, tests and benchmarks all come here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import closing, suppress
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from scrapers.db.embedded import EmbeddedPostgres

EMBEDDED_DATABASE = "tracklists"
APPLICATION_NAME = "tracklists-catalogue"


def resolve_database_url(settings: Mapping[str, Any] | None = None) -> str:
    """``DATABASE_URL`` from the environment or settings, else the embedded server's URL."""
    configured = os.environ.get("DATABASE_URL") or (settings or {}).get("DATABASE_URL")
    if configured:
        return str(configured)
    server = EmbeddedPostgres().ensure_running()
    ensure_database(server.url("postgres"), EMBEDDED_DATABASE)
    return server.url(EMBEDDED_DATABASE)


def connect(url: str, *, autocommit: bool = False) -> psycopg2.extensions.connection:
    """A psycopg2 connection tagged with our application name (visible in pg_stat_activity)."""
    connection = psycopg2.connect(url, application_name=APPLICATION_NAME)
    connection.autocommit = autocommit
    return connection


def ensure_database(admin_url: str, name: str) -> None:
    """Create database ``name`` on the server of ``admin_url`` unless it exists."""
    # Not ``with connection``: psycopg2 2.9 opens a transaction there even in autocommit mode.
    with closing(connect(admin_url, autocommit=True)) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cursor.fetchone() is None:
            # Another process may create it between our check and our CREATE.
            with suppress(psycopg2.errors.DuplicateDatabase):
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def redacted(url: str) -> str:
    """The URL with any password removed, for logs."""
    parameters = psycopg2.extensions.parse_dsn(url)
    parameters.pop("password", None)
    return " ".join(f"{key}={value}" for key, value in sorted(parameters.items()))
