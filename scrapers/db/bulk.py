"""Bulk mode: a whole import in one transaction, with the child tables' foreign keys dropped
while it loads and added back, validated, before COMMIT.

Checking a foreign key row by row was about 45% of the schema floor (issue 12); adding the key
back checks every row in one join instead. Because every step, the DDL included, is in one
transaction, a crash, a kill or a violation leaves the catalogue as it was, keys included.

The price: the transaction holds every writer's advisory lock bucket and an ACCESS EXCLUSIVE
lock on every table it loads, from the start until COMMIT, so other writers *and readers* of
those tables (a crawl, the enrichment service, queries) wait until the import ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from scrapers.db.locks import LOCK_BUCKETS, LOCK_CLASS

# Parents first: the order the locks are taken in.
LOADED_TABLES = (
    "tracks",
    "artists",
    "setlists",
    "track_artists",
    "track_lookup",
    "setlist_tracks",
    "identifier_conflicts",
    "import_row_digests",
)
# The tables whose foreign keys are dropped while loading: those the writer fills with rows
# that reference the parents.
CHILD_TABLES = ("track_artists", "track_lookup", "setlist_tracks", "identifier_conflicts")
LOCK_POLL_SECONDS = 1.0

# Called while waiting for the locks: seconds waited so far, sessions holding them.
OnLockWait = Callable[[float, int], None]


@dataclass(frozen=True)
class ForeignKey:
    table: str
    name: str
    definition: str


def take_locks(cursor: psycopg2.extensions.cursor, on_wait: OnLockWait) -> None:
    """Every advisory bucket, then ACCESS EXCLUSIVE on ``LOADED_TABLES``; as long as it takes.

    Tries for ``LOCK_POLL_SECONDS`` at a time, inside a savepoint, so that between tries
    ``on_wait`` can say who is in the way; buckets come first and in order, as every writer
    takes them, so waiting on a writer cannot deadlock with it.
    """
    cursor.execute("SELECT current_setting('lock_timeout')")
    (lock_timeout,) = cursor.fetchone()
    started = time.monotonic()
    tables = sql.SQL(", ").join(map(sql.Identifier, LOADED_TABLES))
    while True:
        cursor.execute("SAVEPOINT bulk_locks")
        cursor.execute(
            "SELECT set_config('lock_timeout', %s, true)", (f"{int(LOCK_POLL_SECONDS * 1000)}ms",)
        )
        try:
            cursor.execute(
                "SELECT count(pg_advisory_xact_lock(%s, b)) FROM generate_series(0, %s) AS b",
                (LOCK_CLASS, LOCK_BUCKETS - 1),
            )
            cursor.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(tables))
        except (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected):
            cursor.execute("ROLLBACK TO SAVEPOINT bulk_locks")
            on_wait(time.monotonic() - started, _holders(cursor))
            continue
        cursor.execute("RELEASE SAVEPOINT bulk_locks")
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
        return


def _holders(cursor: psycopg2.extensions.cursor) -> int:
    cursor.execute(
        "SELECT count(DISTINCT pid) FROM pg_locks"
        " WHERE granted AND pid <> pg_backend_pid()"
        "   AND (relation = ANY(%s::regclass[]) OR (locktype = 'advisory' AND classid = %s))",
        (list(LOADED_TABLES), LOCK_CLASS),
    )
    return cursor.fetchone()[0]


def drop_foreign_keys(cursor: psycopg2.extensions.cursor) -> list[ForeignKey]:
    """Drop the foreign keys of ``CHILD_TABLES``; returns them, to be added back."""
    cursor.execute(
        "SELECT c.relname, k.conname, pg_get_constraintdef(k.oid)"
        " FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
        " WHERE k.contype = 'f' AND k.conrelid = ANY(%s::regclass[])"
        " ORDER BY c.relname, k.conname",
        (list(CHILD_TABLES),),
    )
    keys = [ForeignKey(*row) for row in cursor.fetchall()]
    for key in keys:
        cursor.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(key.table), sql.Identifier(key.name)
            )
        )
    return keys


def add_foreign_keys(cursor: psycopg2.extensions.cursor, keys: list[ForeignKey]) -> None:
    """Add ``keys`` back as they were; each is validated at once, set-based (a violation raises
    and the transaction, the load with it, rolls back)."""
    for key in keys:
        # The definition is pg_get_constraintdef's own text, read from the catalog above.
        cursor.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.Identifier(key.table), sql.Identifier(key.name), sql.SQL(key.definition)
            )
        )
