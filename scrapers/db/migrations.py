"""Apply the plain-SQL migrations in ``migrations/`` in order.

Each file is a complete transaction of its own (``BEGIN; … COMMIT;``) so that it also runs
unchanged under ``psql -v ON_ERROR_STOP=1 -f``. The runner adds what psql cannot: a session
advisory lock so that two runners never interleave, the order, and the bookkeeping view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg2
import psycopg2.extensions

from scrapers.db.connection import connect

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# Arbitrary but fixed: every runner of this project takes the same lock.
ADVISORY_LOCK_KEY = 0x7472_6163_6B73  # "tracks"

logger = logging.getLogger(__name__)


class MigrationError(RuntimeError):
    """A migration failed; its transaction was rolled back and nothing was recorded."""


class UnknownMigration(MigrationError):
    """No migration file has that name: a usage error, nothing was run."""


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


def run_sql_file(
    connection: psycopg2.extensions.connection,
    path: Path,
    on_notice: Callable[[str], None] | None = None,
) -> None:
    """Run one migration file on an autocommit connection; the file holds its transaction."""
    connection.notices.clear()
    try:
        with connection.cursor() as cursor:
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
    url: str, target: str | None = None, on_notice: Callable[[str], None] | None = None
) -> list[str]:
    """Apply every pending migration (up to ``target``); returns the names applied."""
    done: list[str] = []
    with closing(connect(url, autocommit=True)) as connection, _locked(connection):
        already = applied(connection)
        for migration in discover():
            if migration.name not in already:
                run_sql_file(connection, migration.up, on_notice)
                done.append(migration.name)
            if migration.name == target:
                break
    return done


def apply_one(url: str, name: str, on_notice: Callable[[str], None] | None = None) -> None:
    """Run one migration file as it is (it decides itself whether it is already applied)."""
    migration = named(name)
    with closing(connect(url, autocommit=True)) as connection, _locked(connection):
        run_sql_file(connection, migration.up, on_notice)


def downgrade(url: str, name: str, on_notice: Callable[[str], None] | None = None) -> None:
    """Roll back ``name``; refuses while a later migration is still applied."""
    migration = named(name)
    if migration.down is None:
        raise MigrationError(f"{name} has no _down.sql file")
    with closing(connect(url, autocommit=True)) as connection, _locked(connection):
        already = applied(connection)
        if name not in already:
            raise MigrationError(f"{name} is not applied")
        later = [other for other in already if other > name]
        if later:
            raise MigrationError(f"roll back {', '.join(sorted(later))} before {name}")
        run_sql_file(connection, migration.down, on_notice)


def status(url: str) -> list[tuple[str, datetime | None]]:
    """Each known migration with the time it was applied, or None when pending."""
    with closing(connect(url, autocommit=True)) as connection:
        already = applied(connection)
    return [(migration.name, already.get(migration.name)) for migration in discover()]


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
