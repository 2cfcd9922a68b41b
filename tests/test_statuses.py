"""The statuses of ``scrapers.statuses`` and the database's CHECK constraints say the same."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from scrapers.db.server import migrations
from scrapers.metrics import MatchTier, RefreshOutcome, RowChange, RowOutcome, SkipReason
from scrapers.statuses import (
    ConflictResolution,
    CreditRole,
    EnrichmentStatus,
    IdentifierType,
    RejectionCode,
)
from tests.test_migration_002 import execute, insert_tracks, migrate_002, run_script, track_id

RESTORE = Path(__file__).resolve().parents[1] / "scripts" / "restore_duplicates.py"
MIGRATION = "008_status_checks"
# The sentences migration 002 and its restore function write for the two outcomes.
MERGE_SENTENCE = (
    "merged duplicate carried another value; the keeper kept its own (see deleted_duplicate_tracks)"
)
RESTORE_SENTENCE = "restored track stored without it: another track holds it"
NEW_CHECKS = "('identifier_conflicts_resolution_check', 'rejected_items_reason_check')"

CHECKED: list[tuple[str, str, type[StrEnum]]] = [
    ("tracks", "enrichment_status", EnrichmentStatus),
    ("track_artists", "role", CreditRole),
    ("identifier_conflicts", "identifier_type", IdentifierType),
    ("identifier_conflicts", "resolution", ConflictResolution),
    ("rejected_items", "reason", RejectionCode),
]


def allowed_values(db: Any, table: str, column: str) -> tuple[set[str], bool]:
    """The values the one CHECK constraint on ``table.column`` allows, and whether it holds for
    every row (validated), read from ``pg_constraint``."""
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(c.oid), c.convalidated FROM pg_constraint c"
            " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)"
            " WHERE c.contype = 'c' AND c.conrelid = %s::regclass AND a.attname = %s",
            (table, column),
        )
        [(definition, validated)] = cursor.fetchall()
    # "CHECK ((x = ANY (ARRAY['a'::text, 'b'::text])))": the literals inside ARRAY[...].
    [array] = re.findall(r"ARRAY\[(.*?)\]", definition)
    return set(re.findall(r"'((?:[^']|'')*)'::text", array)), validated


@pytest.mark.parametrize(("table", "column", "enum"), CHECKED, ids=[c[1] for c in CHECKED])
def test_each_enum_is_the_check_constraint_of_its_column(
    db: Any, table: str, column: str, enum: type[StrEnum]
) -> None:
    values, validated = allowed_values(db, table, column)
    assert values == {member.value for member in enum}
    assert validated


def test_a_value_outside_the_set_is_refused(db: Any) -> None:
    for statement in (
        "INSERT INTO identifier_conflicts (identifier_type, incoming_value, origin, resolution)"
        " VALUES ('isrc', 'v', 'test', 'kept')",
        "INSERT INTO rejected_items (origin, reason, payload) VALUES ('test', 'oops: no', '{}')",
    ):
        with pytest.raises(Exception, match="violates check constraint"):
            execute_on(db, statement)
    execute_on(
        db,
        "INSERT INTO rejected_items (origin, reason, payload)"
        " VALUES ('test', 'wrong_type: title must be text', '{}')",
    )


def execute_on(db: Any, statement: str) -> None:
    with db.cursor() as cursor:
        cursor.execute(statement)


def test_migration_008_codes_002s_sentences_keeps_old_rows_and_rolls_back(make_database) -> None:
    url = make_database("001_initial_schema")
    # Tracks 1 and 2 share an ISRC and carry different Spotify IDs: 002 merges them and records
    # the Spotify ID the keeper could not take.
    insert_tracks(
        url,
        [(1, "Song", "GBAAA2400001", "SPOT_1", 124), (2, "Song (dup)", "GBAAA2400001", "SPOT_2")],
    )
    migrate_002(url)
    assert execute(url, "SELECT resolution FROM identifier_conflicts") == [(MERGE_SENTENCE,)]
    # Rows an earlier version wrote with values outside today's sets.
    execute(
        url,
        "INSERT INTO identifier_conflicts (identifier_type, incoming_value, origin, resolution)"
        " VALUES ('isrc', 'v', 'by hand', 'kept');"
        " INSERT INTO rejected_items (origin, reason, payload) VALUES ('old', 'gone', '{}')",
    )

    notices: list[str] = []
    assert migrations.upgrade(url, target=MIGRATION, on_notice=notices.append)[-1] == MIGRATION
    assert execute(url, "SELECT origin, resolution FROM identifier_conflicts ORDER BY origin") == [
        ("002_add_isrc_unique_constraints", "kept_stored"),
        ("by hand", "kept"),
    ]
    # The old rows stay; the checks hold for new rows only, and the migration said so.
    assert execute(
        url,
        "SELECT conname, convalidated FROM pg_constraint"
        f" WHERE conname IN {NEW_CHECKS}"
        " ORDER BY conname",
    ) == [("identifier_conflicts_resolution_check", False), ("rejected_items_reason_check", False)]
    assert sum("NOT VALID" in notice for notice in notices) == 2
    assert not any("does not exist, skipping" in notice for notice in notices)

    # Rolled back, 002's row reads as 002 wrote it; applied again, it holds the code.
    migrations.downgrade(url, MIGRATION)
    assert execute(url, "SELECT resolution FROM identifier_conflicts WHERE origin LIKE '002%'") == [
        (MERGE_SENTENCE,)
    ]
    assert migrations.upgrade(url, target=MIGRATION) == [MIGRATION]
    assert execute(url, "SELECT resolution FROM identifier_conflicts WHERE origin LIKE '002%'") == [
        ("kept_stored",)
    ]

    # The restore function 002 installed now writes the code.
    result = run_script(RESTORE, url, "--id", track_id(2))
    assert result.returncode == 0, result.stderr
    assert execute(
        url,
        "SELECT track_id::text, other_track_id::text, resolution FROM identifier_conflicts"
        " WHERE origin = 'restore_duplicates'",
    ) == [(track_id(2), track_id(1), "kept_on_other_track")]

    # With the odd rows gone, running it again validates both checks.
    execute(
        url,
        "DELETE FROM identifier_conflicts WHERE origin = 'by hand';"
        " DELETE FROM rejected_items WHERE origin = 'old'",
    )
    migrations.apply_one(url, MIGRATION)
    assert execute(
        url,
        f"SELECT bool_and(convalidated) FROM pg_constraint WHERE conname IN {NEW_CHECKS}",
    ) == [(True,)]

    migrations.downgrade(url, MIGRATION)
    assert execute(
        url, "SELECT count(*) FROM pg_constraint WHERE conname LIKE '%resolution_check'"
    ) == [(0,)]
    assert execute(url, "SELECT resolution FROM identifier_conflicts ORDER BY origin") == [
        (RESTORE_SENTENCE,)
    ]
    definition = "pg_get_functiondef('restore_merged_tracks(uuid[], boolean)'::regprocedure)"
    assert execute(url, f"SELECT position(%s IN {definition}) > 0", (RESTORE_SENTENCE,)) == [
        (True,)
    ]
    assert MIGRATION in migrations.upgrade(url)


def test_every_status_label_is_exported_from_the_start() -> None:
    """Each series exists (at 0 until its first event), so rates and alerts see it at once."""
    expected = [("items_rejected_total", {"reason": code}) for code in RejectionCode]
    expected += [
        ("identifier_conflicts_total", {"identifier_type": kind, "resolution": resolution})
        for kind in IdentifierType
        for resolution in ConflictResolution
    ]
    expected += [
        ("enrichment_tracks_total", {"outcome": status}) for status in EnrichmentStatus.outcomes()
    ]
    expected += [("import_rows_total", {"outcome": outcome}) for outcome in RowOutcome]
    expected += [("tracks_matched_total", {"tier": tier}) for tier in MatchTier]
    expected += [("setlist_rows_changed_total", {"change": change}) for change in RowChange]
    expected += [("crawl_tracklists_skipped_total", {"reason": reason}) for reason in SkipReason]
    expected += [
        ("crawl_tracklists_refreshed_total", {"outcome": outcome}) for outcome in RefreshOutcome
    ]
    missing = [
        (name, labels)
        for name, labels in expected
        if REGISTRY.get_sample_value(name, {k: str(v) for k, v in labels.items()}) is None
    ]
    assert missing == []
