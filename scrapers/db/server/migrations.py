"""Apply the plain-SQL migrations in ``migrations/`` in order.

Each file is a complete transaction of its own (``BEGIN; … COMMIT;``) so that it also runs
unchanged under ``psql -v ON_ERROR_STOP=1 -f``. The runner adds what psql cannot: a session
advisory lock so that two runners never interleave, the order, the bookkeeping view, and a live
"waiting for writers…" line while a migration waits for a lock other sessions hold (psycopg2
hands over a statement's own NOTICEs only when it ends).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg2
import psycopg2.extensions

from scrapers.db.server.connection import connect

# migrations/ of the checkout; an installed package carries the same files as scrapers/sql
# (pyproject.toml maps the folder there).
_INSTALLED = Path(__file__).resolve().parents[2] / "sql"
_CHECKOUT = Path(__file__).resolve().parents[3] / "migrations"
MIGRATIONS_DIR = _INSTALLED if _INSTALLED.is_dir() else _CHECKOUT
# Arbitrary but fixed: every runner of this project takes the same lock.
ADVISORY_LOCK_KEY = 0x7472_6163_6B73  # "tracks"
# Session setting the migrations read for their lock timeout (002's default: 60 s).
LOCK_TIMEOUT_SETTING = "migrations.lock_timeout"
MAX_LOCK_TIMEOUT = 86_400.0  # seconds; a day is already more than any migration should wait
LOCK_WAIT_POLL = 1.0  # seconds between looks at what a running migration waits for
# The sessions a backend waits for, described for a person (no query text: it may hold data).
_BLOCKERS = """
    SELECT a.pid, a.application_name, a.usename, a.state,
           round(extract(epoch FROM clock_timestamp() - a.xact_start))
    FROM pg_stat_activity a WHERE a.pid = ANY(pg_blocking_pids(%s)) ORDER BY a.pid
"""

logger = logging.getLogger(__name__)


class MigrationError(RuntimeError):
    """A migration failed; its transaction was rolled back and nothing was recorded."""


class UnknownMigration(MigrationError):
    """No migration file has that name: a usage error, nothing was run."""


class SchemaTooOld(RuntimeError):
    """The database lacks migrations this code has: the one answer to "is the schema current?"
    for every process that reads or writes the catalogue (``require_current_schema``)."""

    def __init__(self, pending: list[str]) -> None:
        self.pending = pending
        super().__init__(
            "the catalogue's schema is older than this code (not applied: "
            f"{', '.join(pending)}): run `python scripts/migrate.py up`"
        )


@dataclass(frozen=True)
class Migration:
    name: str
    up: Path
    down: Path | None


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every ``NNN_name.sql`` with its ``NNN_name_down.sql``, in name order."""
    migrations = []
    for path in sorted(directory.glob("[0-9][0-9][0-9]_*.sql")):
        if path.stem.endswith("_down"):
            continue
        down = path.with_name(f"{path.stem}_down.sql")
        migrations.append(Migration(path.stem, path, down if down.exists() else None))
    return migrations


def named(name: str) -> Migration:
    """The migration called ``name``; UnknownMigration lists the known names otherwise."""
    migrations = {migration.name: migration for migration in discover()}
    if name not in migrations:
        raise UnknownMigration(f"unknown migration {name!r}; known: {', '.join(migrations)}")
    return migrations[name]


def applied(connection: psycopg2.extensions.connection) -> dict[str, datetime]:
    """Applied migration names with their times; empty before 001 has run."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return {}
        cursor.execute("SELECT migration_name, applied_at FROM schema_migrations")
        return dict(cursor.fetchall())


def require_current_schema(connection: psycopg2.extensions.connection) -> None:
    """Raise ``SchemaTooOld`` unless every migration of this code is applied.

    Runs in the caller's transaction (a read-only one is fine) and leaves it open.
    """
    already = applied(connection)
    pending = [migration.name for migration in discover() if migration.name not in already]
    if pending:
        raise SchemaTooOld(pending)


def run_sql_file(
    connection: psycopg2.extensions.connection,
    path: Path,
    on_notice: Callable[[str], None] | None = None,
    url: str | None = None,
) -> None:
    """Run one migration file on an autocommit connection; the file holds its transaction.

    With ``url``, a second connection watches for lock waits and reports them as they happen.
    """
    connection.notices.clear()
    try:
        with connection.cursor() as cursor, _reporting_lock_waits(url, connection, on_notice):
            cursor.execute(path.read_text(encoding="utf-8"))
    except psycopg2.Error as error:
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
        raise MigrationError(f"{path.name} failed and was rolled back: {error}".strip()) from error
    finally:
        for notice in connection.notices:
            (on_notice or logger.info)(notice.strip())
        connection.notices.clear()


def upgrade(
    url: str,
    target: str | None = None,
    on_notice: Callable[[str], None] | None = None,
    lock_timeout: float | None = None,
) -> list[str]:
    """Apply every pending migration (up to ``target``); returns the names applied.

    ``lock_timeout`` (seconds) bounds how long a migration waits for table locks held by other
    sessions before it stops, changing nothing.
    """
    done: list[str] = []
    with _session(url, lock_timeout) as connection:
        already = applied(connection)
        for migration in discover():
            if migration.name not in already:
                run_sql_file(connection, migration.up, on_notice, url)
                done.append(migration.name)
            if migration.name == target:
                break
    return done


def apply_one(
    url: str,
    name: str,
    on_notice: Callable[[str], None] | None = None,
    lock_timeout: float | None = None,
) -> None:
    """Run one migration file as it is (it decides itself whether it is already applied)."""
    migration = named(name)
    with _session(url, lock_timeout) as connection:
        run_sql_file(connection, migration.up, on_notice, url)


def downgrade(url: str, name: str, on_notice: Callable[[str], None] | None = None) -> None:
    """Roll back ``name``; refuses while a later migration is still applied."""
    migration = named(name)
    if migration.down is None:
        raise MigrationError(f"{name} has no _down.sql file")
    with _session(url, None) as connection:
        already = applied(connection)
        if name not in already:
            raise MigrationError(f"{name} is not applied")
        later = [other for other in already if other > name]
        if later:
            raise MigrationError(f"roll back {', '.join(sorted(later))} before {name}")
        run_sql_file(connection, migration.down, on_notice, url)


def status(url: str) -> list[tuple[str, datetime | None]]:
    """Each known migration with the time it was applied, or None when pending."""
    with closing(connect(url, autocommit=True)) as connection:
        already = applied(connection)
    return [(migration.name, already.get(migration.name)) for migration in discover()]


@contextmanager
def _session(url: str, lock_timeout: float | None) -> Iterator[psycopg2.extensions.connection]:
    """An autocommit connection holding the runner's lock, with the lock timeout to use."""
    with closing(connect(url, autocommit=True)) as connection, _locked(connection):
        if lock_timeout is not None:
            milliseconds = max(1, round(checked_lock_timeout(lock_timeout) * 1000))
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config(%s, %s, false)", (LOCK_TIMEOUT_SETTING, f"{milliseconds}ms")
                )
        yield connection


def checked_lock_timeout(seconds: float) -> float:
    """``seconds`` if it is a usable lock timeout, else ValueError saying why."""
    if not 0 < seconds <= MAX_LOCK_TIMEOUT:
        raise ValueError(f"a lock timeout is more than 0 and at most {MAX_LOCK_TIMEOUT:g} seconds")
    return seconds


@contextmanager
def _reporting_lock_waits(
    url: str | None,
    connection: psycopg2.extensions.connection,
    report: Callable[[str], None] | None,
) -> Iterator[None]:
    """While the body runs, say once per blocking session that the migration waits for it."""
    if url is None:
        yield
        return
    backend, done = connection.get_backend_pid(), threading.Event()

    def watch() -> None:
        said: set[int] = set()
        try:
            with closing(connect(url, autocommit=True)) as watcher, watcher.cursor() as cursor:
                while not done.wait(LOCK_WAIT_POLL):
                    cursor.execute(_BLOCKERS, (backend,))
                    new = [row for row in cursor.fetchall() if row[0] not in said]
                    if new:
                        said.update(row[0] for row in new)
                        (report or logger.info)(
                            "waiting for writers… the migration waits for locks held by: "
                            + "; ".join(
                                f"pid {pid} (application {app!r}, user {user}, {state},"
                                f" transaction open {age} s)"
                                for pid, app, user, state, age in new
                            )
                        )
        except psycopg2.Error as error:  # the watch is a courtesy: never fail the migration
            logger.debug("lock wait watch stopped: %s", error)

    thread = threading.Thread(target=watch, name="migration-lock-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@contextmanager
def _locked(connection: psycopg2.extensions.connection) -> Iterator[None]:
    """Hold the project's session advisory lock: two runners never interleave."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
