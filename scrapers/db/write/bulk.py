"""Bulk mode: a whole import in one transaction, with the child tables' foreign keys dropped
while it loads and added back, validated, before COMMIT.

When a load brings at least as many spellings as ``track_lookup`` holds (a first import), the
table's GIN search indexes are dropped too and built again before COMMIT
(``drop_search_indexes``).

Checking a foreign key row by row was about 45% of the schema floor (issue 12); adding the key
back checks every row in one join instead. Because every step, the DDL included, is in one
transaction, a crash, a kill or a violation leaves the catalogue as it was, keys included.

The price: the transaction holds every writer's advisory lock bucket and an ACCESS EXCLUSIVE
lock on every table it loads, from the start until COMMIT, so other writers *and readers* of
those tables (a crawl, the enrichment service, queries) wait until the import ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg2.extensions
from psycopg2 import sql

from scrapers.db.write.locks import (
    LOCK_BUCKETS,
    LOCK_CLASS,
    WRITTEN_TABLES,
    OnLockWait,
    wait_for_locks,
)

# The tables whose foreign keys are dropped while loading: those the writer fills with rows
# that reference the parents.
CHILD_TABLES = ("track_artists", "track_lookup", "setlist_tracks", "identifier_conflicts")

# Told which step of a load runs ("inserting the new tracks"): once the file is read, a load is
# a few long statements, each silent until it ends.
OnStep = Callable[[str], None]


@dataclass(frozen=True)
class SearchIndex:
    name: str
    definition: str


@dataclass(frozen=True)
class ForeignKey:
    table: str
    name: str
    definition: str


def take_locks(cursor: psycopg2.extensions.cursor, on_wait: OnLockWait) -> None:
    """Every advisory bucket, then ACCESS EXCLUSIVE on ``WRITTEN_TABLES``; as long as it takes.

    Buckets come first and in order, as every writer takes them, so waiting on a writer cannot
    deadlock with it; ``on_wait`` is told who is in the way each second (``wait_for_locks``).
    """
    tables = sql.SQL(", ").join(map(sql.Identifier, WRITTEN_TABLES))

    def lock_everything(locking: psycopg2.extensions.cursor) -> None:
        locking.execute(
            "SELECT count(pg_advisory_xact_lock(%s, b)) FROM generate_series(0, %s) AS b",
            (LOCK_CLASS, LOCK_BUCKETS - 1),
        )
        locking.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(tables))

    wait_for_locks(cursor, lock_everything, on_wait)


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


def drop_search_indexes(cursor: psycopg2.extensions.cursor) -> list[SearchIndex]:
    """Drop the explorer's search indexes of ``track_lookup`` (GIN, migration 011) when the
    staged load brings at least as many spellings not stored as the table holds; returns them,
    to be built again (``build_search_indexes``).

    A GIN index takes each new row's trigrams and words one at a time: 737,268 spellings into an
    empty table took 40 s with the two indexes and 14 s without, and building both afterwards
    5.5 s + 7.1 s. Building reads the whole table, so it pays only when the load is at least
    half of the table after it: the rows of ``import_staging`` whose spelling is not stored (an
    upper bound of the spellings the load adds) against the table's rows (``reltuples``; counted
    when the table was never analysed).
    """
    cursor.execute(
        "SELECT (SELECT count(*) FROM import_staging s WHERE NOT EXISTS ("
        "    SELECT 1 FROM track_lookup l WHERE l.raw_artist = s.artist AND l.raw_title = s.title))"
        " >= (SELECT CASE WHEN reltuples >= 0 THEN reltuples"
        "     ELSE (SELECT count(*) FROM track_lookup) END"
        "     FROM pg_class WHERE oid = 'track_lookup'::regclass)"
    )
    if not cursor.fetchone()[0]:
        return []
    cursor.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am a ON a.oid = i.relam"
        " WHERE x.indrelid = 'track_lookup'::regclass AND a.amname = 'gin' ORDER BY i.relname"
    )
    indexes = [SearchIndex(*row) for row in cursor.fetchall()]
    for index in indexes:
        cursor.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index.name)))
    return indexes


def build_search_indexes(cursor: psycopg2.extensions.cursor, indexes: list[SearchIndex]) -> None:
    """Build ``indexes`` again as they were, over the loaded table."""
    for index in indexes:
        # The definition is pg_get_indexdef's own text, read from the catalog above.
        cursor.execute(sql.SQL(index.definition))
