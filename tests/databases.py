"""The test databases: created from migrated templates, dropped in the background.

Every test gets a database of its own, a copy of a template migrated once per session (per
pytest-xdist worker: each has its own templates, so workers never copy a template another one is
migrating). Dropping is the slow part: each ``DROP DATABASE`` waits for a checkpoint, seconds on
a busy server, and drops running together share one (20 databases: 25 s one after the other,
0.9 s 8 at a time). So a test's database is handed to a background thread when the test ends,
which drops whatever has piled up several at a time while the next tests run.
"""

from __future__ import annotations

import queue
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import psycopg2.extensions
from psycopg2 import sql

from scrapers.db.server import migrations
from scrapers.db.server.connection import connect

# Drops in flight per session: few, the server (max_connections) is shared.
CONCURRENT_DROPS = 4


def database_url(server_url: str, name: str) -> str:
    """The same server as ``server_url``, database ``name``."""
    return psycopg2.extensions.make_dsn(server_url, dbname=name)


class TestDatabases:
    """Creates ``test_…`` databases on ``server_url``'s server; drops every one by ``close()``."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self._templates: dict[str | None, str] = {}
        self._kept: list[str] = []  # dropped by close(): templates, databases made to last
        self._to_drop: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._drop_errors: list[BaseException] = []
        self._dropper = threading.Thread(target=self._drop_in_background, daemon=True)
        self._dropper.start()

    def create(self, upto: str | None = None) -> str:
        """A fresh database's URL: ``upto=None`` every migration, ``"001_initial_schema"`` up to
        that one, ``""`` none. It lasts until ``close()`` unless handed to ``drop_soon``."""
        if upto == "":
            return database_url(self.server_url, self._create())
        if upto not in self._templates:
            template = self._create()
            self._kept.append(template)
            migrations.upgrade(database_url(self.server_url, template), target=upto)
            self._templates[upto] = template
        return database_url(self.server_url, self._create(self._templates[upto]))

    def drop_soon(self, url: str) -> None:
        """Drop the database of ``url`` in the background (its test is over)."""
        self._to_drop.put(psycopg2.extensions.parse_dsn(url)["dbname"])

    def close(self) -> None:
        """Drop every database made here; raise the first drop that failed."""
        for name in self._kept:
            self._to_drop.put(name)
        self._to_drop.put(None)
        self._dropper.join()
        if self._drop_errors:
            raise self._drop_errors[0]

    def _create(self, template: str | None = None) -> str:
        name = f"test_{uuid.uuid4().hex[:16]}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        self._execute(statement)
        return name

    def _drop_in_background(self) -> None:
        with ThreadPoolExecutor(max_workers=CONCURRENT_DROPS) as pool:
            while True:
                names = [self._to_drop.get()]
                while not self._to_drop.empty():
                    names.append(self._to_drop.get())
                for outcome in pool.map(self._drop, [name for name in names if name]):
                    if outcome is not None:
                        self._drop_errors.append(outcome)
                if None in names:
                    return

    def _drop(self, name: str) -> BaseException | None:
        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        try:
            self._execute(statement.format(sql.Identifier(name)))
        except psycopg2.Error as error:
            return error
        return None

    def _execute(self, statement: sql.Composable) -> None:
        with closing(connect(self.server_url, autocommit=True)) as admin, admin.cursor() as cursor:
            cursor.execute(statement)
