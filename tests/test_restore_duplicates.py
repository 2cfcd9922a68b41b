"""scripts/restore_duplicates.py: undo one merge group, keep every other merge."""

from __future__ import annotations

from pathlib import Path

import pytest

from scrapers.db.server import migrations
from tests.test_migration_002 import (
    execute,
    insert_tracks,
    link,
    migrate_002,
    run_script,
    snapshot,
    track_id,
)

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "restore_duplicates.py"
VERIFY = SCRIPT.with_name("verify_isrc_uniqueness.py")


@pytest.fixture
def merged(make_database) -> tuple[str, dict[str, list[tuple]]]:
    """Two merge groups: 1+2 (same ISRC, one spelled with hyphens) and 3+4 (same Spotify ID)."""
    url = make_database("001_initial_schema")
    insert_tracks(
        url,
        [
            (1, "Song", "GBAAA2400001", None, 124),
            (2, "Song (dup)", "gb-aaa-24-00001", "SPOT_2"),
            (3, "Other", None, "SPOT_3"),
            (4, "Other (dup)", None, "SPOT_3"),
        ],
    )
    for n in range(1, 5):
        link(url, n, row_index=n)  # every track: the same artist as primary, one position
    execute(
        url,
        "INSERT INTO track_lookup (raw_artist, raw_title, track_id) VALUES ('x', 'song dup', %s); "
        "INSERT INTO identifier_conflicts (identifier_type, track_id, other_track_id, "
        "incoming_value, origin, resolution) VALUES ('isrc', %s, %s, 'v', 'test', 'kept')",
        (track_id(2), track_id(2), track_id(4)),
    )
    before = snapshot(url)
    migrate_002(url)
    assert execute(url, "SELECT count(*) FROM tracks") == [(2,)]
    return url, before


def rows_about(contents: dict[str, list[tuple]], ids: list[str]) -> dict[str, list[tuple]]:
    return {
        table: [row for row in rows if any(i in row[0] for i in ids)]
        for table, rows in contents.items()
        if table in ("setlist_tracks", "track_artists", "track_lookup")
    }


def test_restore_one_group_by_identifier(merged: tuple[str, dict]) -> None:
    url, before = merged
    result = run_script(SCRIPT, url, "--identifier", "GB-AAA-24-00001")
    assert result.returncode == 0, result.stderr
    assert "Restored 1 tracks in 1 group(s)." in result.stdout

    # The group is back: track 1 as it was, track 2 with its own ISRC taken by track 1.
    tracks = execute(url, "SELECT id::text, isrc, spotify_id, bpm FROM tracks ORDER BY id")
    assert tracks == [
        (track_id(1), "GBAAA2400001", None, 124),
        (track_id(2), None, "SPOT_2", None),
        (track_id(3), None, "SPOT_3", None),
    ]
    assert "restored without isrc GBAAA2400001" in result.stdout
    assert execute(
        url,
        "SELECT track_id::text, other_track_id::text, incoming_value FROM identifier_conflicts "
        "WHERE origin = 'restore_duplicates'",
    ) == [(track_id(2), track_id(1), "GBAAA2400001")]

    # Its relationships are back exactly, including the credit the merge had to remove.
    group = [track_id(1), track_id(2)]
    assert rows_about(snapshot(url), group) == rows_about(before, group)

    # The other group stays merged, and uniqueness still holds.
    assert execute(url, "SELECT count(*) FROM tracks WHERE spotify_id = 'SPOT_3'") == [(1,)]
    assert execute(
        url, "SELECT count(*) FROM deleted_duplicate_tracks WHERE restored_at IS NULL"
    ) == [(1,)]
    assert run_script(VERIFY, url).returncode == 0


def test_restore_by_id_of_a_duplicate(merged: tuple[str, dict]) -> None:
    url, before = merged
    result = run_script(SCRIPT, url, "--id", track_id(4))
    assert result.returncode == 0, result.stderr
    group = [track_id(3), track_id(4)]
    assert rows_about(snapshot(url), group) == rows_about(before, group)
    assert execute(url, "SELECT spotify_id FROM tracks WHERE id = %s", (track_id(4),)) == [(None,)]
    # Nothing left to restore for that group.
    assert run_script(SCRIPT, url, "--id", track_id(4)).returncode == 1


def test_dry_run_and_list_change_nothing(merged: tuple[str, dict]) -> None:
    url, _ = merged
    after_merge = snapshot(url)
    listed = run_script(SCRIPT, url, "--list")
    assert listed.returncode == 0 and len(listed.stdout.strip().splitlines()) == 2
    dry = run_script(SCRIPT, url, "--identifier", "SPOT_3", "--dry-run")
    assert dry.returncode == 0 and f"keeper {track_id(3)}" in dry.stdout
    assert snapshot(url) == after_merge


def test_no_match_and_misuse(merged: tuple[str, dict], make_database) -> None:
    url, _ = merged
    assert run_script(SCRIPT, url, "--identifier", "USRC99999999").returncode == 1
    assert run_script(SCRIPT, url, "--id", "not-a-uuid").returncode == 2
    assert run_script(SCRIPT, url).returncode == 2
    unmigrated = run_script(SCRIPT, make_database("001_initial_schema"), "--list")
    assert unmigrated.returncode == 2 and "not applied" in unmigrated.stderr


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_restore_without_a_match_says_what_was_not_found(
    merged: tuple[str, dict], dry_run: list[str]
) -> None:
    url, _ = merged
    by_identifier = run_script(SCRIPT, url, "--identifier", "x", *dry_run)
    assert by_identifier.returncode == 1
    assert "No unrestored merge group involves identifier 'x'" in by_identifier.stderr
    track = "00000000-0000-0000-0000-0000000000ff"
    by_id = run_script(SCRIPT, url, "--id", track, *dry_run)
    assert by_id.returncode == 1
    assert f"No unrestored merge group holds track {track}" in by_id.stderr


def test_rollback_after_a_partial_restore_restores_the_rest(merged: tuple[str, dict]) -> None:
    url, before = merged
    assert run_script(SCRIPT, url, "--id", track_id(3)).returncode == 0
    migrations.downgrade(url, "002_add_isrc_unique_constraints")
    after = snapshot(url)
    # Everything is back except what the restore had to leave out: track 4's Spotify ID
    # (held by track 3 while the unique index existed), and the conflict row recording it.
    untouched = ("setlist_tracks", "track_artists", "track_lookup", "artists", "setlists")
    assert {t: after[t] for t in untouched} == {t: before[t] for t in untouched}
    assert execute(url, "SELECT count(*) FROM tracks") == [(4,)]


def test_a_row_pointing_into_two_groups_is_restored_group_by_group(
    merged: tuple[str, dict],
) -> None:
    url, _ = merged
    # Recorded before the merge: a conflict between duplicate 2 (group 1+2) and 4 (group 3+4).
    row = execute(
        url,
        "SELECT track_id::text, other_track_id::text FROM identifier_conflicts "
        "WHERE origin = 'test'",
    )
    assert row == [(track_id(1), track_id(3))]  # both re-pointed to the keepers
    assert run_script(SCRIPT, url, "--id", track_id(2)).returncode == 0
    assert execute(
        url,
        "SELECT track_id::text, other_track_id::text FROM identifier_conflicts "
        "WHERE origin = 'test'",
    ) == [(track_id(2), track_id(3))]
    assert run_script(SCRIPT, url, "--id", track_id(4)).returncode == 0
    assert execute(
        url,
        "SELECT track_id::text, other_track_id::text FROM identifier_conflicts "
        "WHERE origin = 'test'",
    ) == [(track_id(2), track_id(4))]
