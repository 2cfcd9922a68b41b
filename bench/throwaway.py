"""A database of its own for one benchmark run, on the server DATABASE_URL names (else the
embedded one), dropped at the end unless kept."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager

import psycopg2.extensions
from psycopg2 import sql

from scrapers.db.server.connection import connect, resolve_database_url


@contextmanager
def throwaway_database(prefix: str, *, keep: bool = False) -> Iterator[str]:
    """Create ``<prefix>_<random>`` and yield its URL; drop it afterwards (``keep``: print the
    URL instead, to look at it)."""
    admin_url = psycopg2.extensions.make_dsn(resolve_database_url(), dbname="postgres")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with closing(connect(admin_url, autocommit=True)) as admin, admin.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg2.extensions.make_dsn(admin_url, dbname=name)
    try:
        yield url
    finally:
        if keep:
            print(f"kept: {url}")
        else:
            with closing(connect(admin_url, autocommit=True)) as admin, admin.cursor() as cursor:
                cursor.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
