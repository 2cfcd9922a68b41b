"""The merge rule (scrapers/db/write/merge.py) agrees with its SQL renderings: the writer's and
enrichment's UPDATE (``merge_sql.assignments``) and migration 002's keeper fill; an incoming
row's columns are the rule's, typed as ``tracks`` types them."""

from __future__ import annotations

import datetime as dt
import json
from contextlib import closing
from decimal import Decimal
from typing import Any

import psycopg2.extras
import pytest
from psycopg2 import sql

from scrapers.db.server import migrations
from scrapers.db.server.connection import connect
from scrapers.db.write import merge, merge_sql

RULE_COLUMNS = (*merge.OVERWRITE, *merge.FILL_ONLY, "metadata", "enrichment_status")
MB1 = "11111111-1111-1111-1111-111111111111"
MB2 = "22222222-2222-2222-2222-222222222222"
DAY = dt.date(2020, 1, 2)

CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "nothing incoming": ({"bpm": Decimal(120), "metadata": {"a": 1}}, {"metadata": {}}),
    "incoming descriptive values win, nulls never erase": (
        {"bpm": Decimal(120), "key": "8A", "label": "Old", "metadata": {}},
        {"bpm": Decimal(128), "key": None, "genre": "Trance", "release_date": DAY},
    ),
    "identity fills only when empty": (
        {"isrc": "USRC12345678", "musicbrainz_id": None, "version": "Extended", "metadata": {}},
        {"isrc": "GBAYE0000001", "musicbrainz_id": MB1, "version": "Radio", "spotify_id": "s"},
    ),
    "identity filled from nothing": (
        {"metadata": {}},
        {"musicbrainz_id": MB2, "title_key": "k", "spotify_id": "s"},
    ),
    "metadata keys merge, incoming wins": (
        {"metadata": {"a": 1, "b": {"x": 1}}},
        {"metadata": {"b": {"y": 2}, "c": 3}},
    ),
    "the same values again change nothing": (
        {"bpm": Decimal(128), "isrc": "USRC12345678", "metadata": {"a": 1}},
        {"bpm": Decimal(128), "isrc": "USRC12345678", "metadata": {"a": 1}},
    ),
    "an outcome replaces pending": (
        {"enrichment_status": "pending", "metadata": {}},
        {"enrichment_status": "enriched"},
    ),
    "pending never replaces an outcome": (
        {"enrichment_status": "not_found", "metadata": {}},
        {"enrichment_status": "pending"},
    ),
    "one outcome replaces another": (
        {"enrichment_status": "failed", "metadata": {}},
        {"enrichment_status": "enriched"},
    ),
    "no status keeps the stored one": (
        {"enrichment_status": "enriched", "metadata": {}},
        {"enrichment_status": None},
    ),
}


def full_row(values: dict[str, Any]) -> dict[str, Any]:
    return {name: values.get(name) for name in RULE_COLUMNS}


def adapted(row: dict[str, Any]) -> list[Any]:
    return [
        psycopg2.extras.Json(row[c]) if c == "metadata" and row[c] is not None else row[c]
        for c in RULE_COLUMNS
    ]


def test_an_incoming_row_has_the_rule_s_columns_typed_as_tracks_types_them(db) -> None:
    assert tuple(merge.COLUMN_TYPES) == RULE_COLUMNS
    with db.cursor() as cursor:
        cursor.execute(
            # The type without its modifier: an incoming bpm is numeric, rounded as it is stored.
            "SELECT attname::text, format_type(atttypid, NULL) FROM pg_attribute"
            " WHERE attrelid = 'tracks'::regclass AND attname = ANY(%s::name[])",
            (list(RULE_COLUMNS),),
        )
        in_tracks = dict(cursor.fetchall())
    assert in_tracks == merge.COLUMN_TYPES


@pytest.mark.parametrize("case", CASES)
def test_sql_assignments_agree_with_the_python_rule(server_url: str, case: str) -> None:
    stored, incoming = (full_row(values) for values in CASES[case])
    columns = merge_sql.incoming_columns()
    names = sql.SQL(", ").join(map(sql.Identifier, RULE_COLUMNS))
    with closing(connect(server_url)) as connection, connection.cursor() as cursor:
        cursor.execute(
            sql.SQL(
                "CREATE TEMP TABLE t (id int, {c}, updated_at timestamptz);"
                " CREATE TEMP TABLE u (id int, {c})"
            ).format(c=columns)
        )
        for table, row in (("t", stored), ("u", incoming)):
            cursor.execute(
                sql.SQL("INSERT INTO {} (id, {}) VALUES (1, {})").format(
                    sql.Identifier(table),
                    names,
                    sql.SQL(", ").join([sql.Placeholder()] * len(RULE_COLUMNS)),
                ),
                adapted(row),
            )
        cursor.execute(
            sql.SQL("SELECT {} FROM t JOIN u ON t.id = u.id").format(merge_sql.changes())
        )
        changes = cursor.fetchone()[0]
        cursor.execute(
            sql.SQL("UPDATE t SET {} FROM u WHERE t.id = u.id").format(merge_sql.assignments())
        )
        cursor.execute(sql.SQL("SELECT {} FROM t").format(names))
        in_sql = dict(zip(RULE_COLUMNS, cursor.fetchone(), strict=True))
        connection.rollback()
    expected = merge.merge(stored, incoming)
    if in_sql["musicbrainz_id"] is not None:
        in_sql["musicbrainz_id"] = str(in_sql["musicbrainz_id"])
    assert in_sql == expected
    assert changes == (expected != stored)


def test_migration_002_keeper_fill_is_the_merge_rule(make_database) -> None:
    """The keeper is the stored row; the incoming record is, per column, the best-ranked
    duplicate's non-null value, and per metadata key the best-ranked duplicate's value."""
    url = make_database("001_initial_schema")
    isrc = "USRC12345678"
    keeper = {
        "bpm": Decimal("120.00"),
        "key": "8A",
        "label": "Keeper Label",
        "duration_ms": 200000,
        "musicbrainz_id": MB1,
        "version": "Extended Mix",
        "metadata": {"a": "keeper", "b": "keeper"},
        "enrichment_status": "pending",
    }
    second = {  # fewer columns: ranked second
        "bpm": Decimal("128.00"),
        "genre": "Trance",
        "musicbrainz_id": MB2,
        "spotify_id": "4uLU6hMCjMI75M1A2tKUQC",
        "metadata": {"b": "second", "c": "second"},
        "enrichment_status": "enriched",
    }
    third = {  # fewest: ranked last
        "bpm": Decimal("140.00"),
        "release_date": DAY,
        "metadata": {"c": "third", "d": "third"},
        "enrichment_status": "pending",
    }
    rows = [
        (f"00000000-0000-0000-0000-{n:012d}", row)
        for n, row in enumerate((keeper, second, third), start=1)
    ]
    with closing(connect(url, autocommit=True)) as connection, connection.cursor() as cursor:
        for track_id, row in rows:
            names = [c for c in RULE_COLUMNS if row.get(c) is not None and c != "isrc"]
            cursor.execute(
                sql.SQL(
                    "INSERT INTO tracks (id, title, normalized_title, isrc, {}) "
                    "VALUES (%s, 'T', 't', %s, {})"
                ).format(
                    sql.SQL(", ").join(map(sql.Identifier, names)),
                    sql.SQL(", ").join([sql.Placeholder()] * len(names)),
                ),
                [
                    track_id,
                    isrc,
                    *(json.dumps(row[c]) if c == "metadata" else row[c] for c in names),
                ],
            )
    migrations.upgrade(url, target="002_add_isrc_unique_constraints")
    with closing(connect(url, autocommit=True)) as connection, connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("SELECT id::text, {} FROM tracks").format(
                sql.SQL(", ").join(map(sql.Identifier, RULE_COLUMNS))
            )
        )
        stored_rows = cursor.fetchall()
    assert len(stored_rows) == 1 and stored_rows[0][0] == rows[0][0]
    in_sql = dict(zip(RULE_COLUMNS, stored_rows[0][1:], strict=True))
    in_sql["musicbrainz_id"] = str(in_sql["musicbrainz_id"])
    duplicates = [second, third]
    incoming: dict[str, Any] = {
        name: next((d[name] for d in duplicates if d.get(name) is not None), None)
        for name in RULE_COLUMNS
        if name != "metadata"
    }
    incoming["metadata"] = {k: v for d in reversed(duplicates) for k, v in d["metadata"].items()}
    expected = merge.merge(full_row({**keeper, "isrc": isrc}), incoming)
    assert in_sql == expected
    # The rule's consequences, spelled out: a duplicate's bpm wins, the keeper's identity stays.
    assert (in_sql["bpm"], in_sql["musicbrainz_id"], in_sql["enrichment_status"]) == (
        Decimal("128.00"),
        MB1,
        "enriched",
    )
