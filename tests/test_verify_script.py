"""scripts/verify_isrc_uniqueness.py, run as CI runs it: a subprocess with DATABASE_URL set."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from tests.test_migration_002 import execute, insert_tracks, run_script

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "verify_isrc_uniqueness.py"


def run_verify(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_script(SCRIPT, url, *args)


def failures(url: str) -> list[str]:
    result = run_verify(url, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    return [f["message"] for f in report["findings"] if f["status"] == "fail"]


@pytest.fixture
def good_db(db_url: str) -> str:
    insert_tracks(
        db_url,
        [(1, "A", "USRC12345678", "sp_a"), (2, "B", "GBAAA2400001", None), (3, "C", None, None)],
    )
    return db_url


def test_good_database_passes(good_db: str) -> None:
    result = run_verify(good_db)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ Migration applied on:" in result.stdout
    assert "✓ ALL VERIFICATION CHECKS PASSED" in result.stdout
    assert "✗" not in result.stdout
    report = json.loads(run_verify(good_db, "--json").stdout)
    assert report["passed"] is True
    coverage = next(f for f in report["findings"] if f["section"] == "COVERAGE")
    assert coverage["details"]["isrc_coverage_pct"] == pytest.approx(66.67)


def test_empty_table_passes_without_dividing_by_zero(db_url: str) -> None:
    result = run_verify(db_url, "--min-isrc-coverage", "80")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "coverage does not apply" in result.stdout


def test_low_coverage_warns_by_default_and_fails_with_a_threshold(db_url: str) -> None:
    insert_tracks(db_url, [(1, "A", "USRC12345678", None), (2, "B", None, None)])
    default = run_verify(db_url)
    assert default.returncode == 0
    assert "⚠ ISRC coverage 50.0%" not in default.stdout  # 50% meets the default warning level
    insert_tracks(db_url, [(3, "C", None, None)])
    warned = run_verify(db_url)
    assert warned.returncode == 0 and "⚠ ISRC coverage 33.3%" in warned.stdout
    assert run_verify(db_url, "--min-isrc-coverage", "30").returncode == 0
    assert any("required at least 40%" in m for m in failures_with(db_url, "40"))


def failures_with(url: str, threshold: str) -> list[str]:
    result = run_verify(url, "--json", "--min-isrc-coverage", threshold)
    assert result.returncode == 1
    return [f["message"] for f in json.loads(result.stdout)["findings"] if f["status"] == "fail"]


def test_duplicate_fails(good_db: str) -> None:
    execute(good_db, "DROP INDEX idx_tracks_spotify_id_unique")
    insert_tracks(good_db, [(4, "A again", None, "sp_a")])
    found = failures(good_db)
    assert any("1 duplicate Spotify ID groups" in m for m in found)


def test_missing_index_fails(good_db: str) -> None:
    execute(good_db, "DROP INDEX idx_tracks_isrc_unique")
    assert failures(good_db) == ["idx_tracks_isrc_unique does not exist"]


@pytest.mark.parametrize(
    ("definition", "problem"),
    [
        ("ON tracks (isrc) WHERE isrc IS NOT NULL", "is not unique"),
        ("UNIQUE ON tracks (isrc)", "is not partial"),
        ("UNIQUE ON tracks (title) WHERE isrc IS NOT NULL", "is not on the column isrc"),
        ("UNIQUE ON tracks (isrc, title) WHERE isrc IS NOT NULL", "is not on the column isrc"),
        ("UNIQUE ON tracks (isrc) WHERE title IS NOT NULL", "is not partial"),
    ],
)
def test_index_with_the_right_name_but_wrong_shape_fails(
    good_db: str, definition: str, problem: str
) -> None:
    unique = definition.startswith("UNIQUE ")
    columns = definition.removeprefix("UNIQUE ")
    execute(
        good_db,
        "DROP INDEX idx_tracks_isrc_unique; "
        f"CREATE {'UNIQUE ' if unique else ''}INDEX idx_tracks_isrc_unique {columns}",
    )
    found = failures(good_db)
    assert len(found) == 1 and problem in found[0]


def test_invalid_index_fails(good_db: str) -> None:
    # A concurrent build that hits a duplicate leaves an INVALID index behind under the name.
    execute(good_db, "DROP INDEX idx_tracks_isrc_unique")
    insert_tracks(good_db, [(4, "Dup", "USRC12345678", None)])
    with pytest.raises(Exception, match="could not create unique index"):
        execute(
            good_db,
            "CREATE UNIQUE INDEX CONCURRENTLY idx_tracks_isrc_unique ON tracks (isrc) "
            "WHERE isrc IS NOT NULL",
        )
    execute(good_db, "DELETE FROM tracks WHERE title = 'Dup'")
    found = failures(good_db)
    assert len(found) == 1 and "is not valid" in found[0]


def test_invalid_stored_isrc_fails(good_db: str) -> None:
    execute(good_db, "UPDATE tracks SET isrc = 'TC1234567890' WHERE title = 'B'")
    found = failures(good_db)
    assert len(found) == 1 and "1 stored ISRCs are not valid" in found[0]


def test_migration_not_applied_fails(make_database) -> None:
    url = make_database("001_initial_schema")
    found = failures(url)
    assert "Migration 002_add_isrc_unique_constraints is not applied" in found
    assert "idx_tracks_isrc_unique does not exist" in found


def test_unreachable_database_exits_2_with_one_line(server_url: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_verify(f"postgresql://nobody@127.0.0.1:{port}/nothing")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot check the database" in lines[0]


def test_misuse_exits_2(db_url: str) -> None:
    assert run_verify(db_url, "--min-isrc-coverage", "lots").returncode == 2
    assert run_verify(db_url, "--min-isrc-coverage", "101").returncode == 2
    assert run_verify(db_url, "--frobnicate").returncode == 2
