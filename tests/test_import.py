"""``scripts/import_tracks.py`` end to end: the CLI as a subprocess against a real PostgreSQL."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from contextlib import closing, suppress
from hashlib import sha256
from pathlib import Path

import pytest

from scrapers.db.server.connection import connect
from scrapers.importers.csv_reader import UNCLOSED_QUOTE
from scrapers.importers.lines import TOO_LONG

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "import"
SCRIPT = REPO_ROOT / "scripts" / "import_tracks.py"
GENERATOR = REPO_ROOT / "bench" / "generate_import_file.py"


def start_import(url: str, *args: object, launcher: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    """The import as a child process; ``launcher`` is a command that ``exec``s it."""
    environment = {**os.environ, "DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [*launcher, sys.executable, str(SCRIPT), *map(str, args)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_import(url: str, *args: object, expect: int = 0) -> subprocess.CompletedProcess[str]:
    process = start_import(url, *args)
    stdout, stderr = process.communicate(timeout=600)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert result.returncode == expect, f"exit {result.returncode}\n{stdout}\n{stderr[-3000:]}"
    return result


def _state_and_parent(stat: Path) -> tuple[str, int]:
    # "pid (command) state ppid ...": the command may hold spaces, so split after the ")".
    fields = stat.read_text().rpartition(")")[2].split()
    return fields[0], int(fields[1])


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            if _state_and_parent(stat)[1] == pid:
                children.append(int(stat.parent.name))
    return children


def running(pid: int) -> bool:
    """Whether ``pid`` exists and has not ended (a zombie waiting to be reaped has ended)."""
    try:
        return _state_and_parent(Path(f"/proc/{pid}/stat"))[0] != "Z"
    except OSError:
        return False


def generate(path: Path, rows: int, seed: int = 6) -> Path:
    subprocess.run(
        [sys.executable, str(GENERATOR), str(path), "--rows", str(rows), "--seed", str(seed)],
        check=True,
    )
    return path


def as_jsonl(csv_path: Path) -> Path:
    """The rows of a CSV file as JSON lines: a format the validation process validates (a CSV
    file's rows are validated in columns, by the reading process)."""
    path = csv_path.with_suffix(".jsonl")
    with csv_path.open(encoding="utf-8", newline="") as source, path.open("w") as out:
        for row in csv.DictReader(source):
            out.write(json.dumps({key: value for key, value in row.items() if value}) + "\n")
    return path


def query(url: str, statement: str, parameters: tuple | None = None) -> list[tuple]:
    with closing(connect(url, autocommit=True)) as connection, connection.cursor() as cursor:
        cursor.execute(statement, parameters)
        return cursor.fetchall()


def summary_value(stdout: str, label: str) -> str:
    for line in stdout.splitlines():
        if line.strip().startswith(label):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{label!r} not in summary:\n{stdout}")


# Everything an import writes, with track ids replaced by the track's content so that two
# databases filled by different runs compare equal when they hold the same catalogue.
SNAPSHOT_QUERIES = {
    "tracks": """
        SELECT title, normalized_title, title_key, isrc, spotify_id, musicbrainz_id::text,
               duration_ms, bpm, key, label, release_date, genre, is_remix, version,
               metadata::text, enrichment_status
        FROM tracks ORDER BY 3, 4 NULLS FIRST, 5 NULLS FIRST, 1""",
    "credits": """
        SELECT t.title_key, t.isrc, t.spotify_id, a.normalized_name, ta.role, ta.position
        FROM track_artists ta JOIN tracks t ON t.id = ta.track_id
        JOIN artists a ON a.id = ta.artist_id ORDER BY 1, 2, 3, 4, 5""",
    "artists": "SELECT name, normalized_name FROM artists ORDER BY 2",
    "lookup": """
        SELECT l.raw_artist, l.raw_title, t.title_key, t.isrc, t.spotify_id
        FROM track_lookup l JOIN tracks t ON t.id = l.track_id ORDER BY 1, 2""",
    "setlists": "SELECT source, source_id, title, djs, set_date FROM setlists ORDER BY 1, 2",
    "setlist_rows": """
        SELECT s.source_id, r.row_index, r.raw_artist, r.raw_title, t.title_key, r.is_unknown
        FROM setlist_tracks r JOIN setlists s ON s.id = r.setlist_id
        LEFT JOIN tracks t ON t.id = r.track_id ORDER BY 1, 2""",
    "rejected": "SELECT location, reason FROM rejected_items ORDER BY 1, 2",
    "conflicts": """
        SELECT identifier_type, stored_value, incoming_value, resolution
        FROM identifier_conflicts ORDER BY 1, 2, 3, 4""",
}


def snapshot(url: str) -> dict[str, list[tuple]]:
    return {name: query(url, statement) for name, statement in SNAPSHOT_QUERIES.items()}


def assert_no_duplicate_tracks(url: str) -> None:
    for column in ("isrc", "spotify_id"):
        duplicated = query(
            url,
            f"SELECT {column}, count(*) FROM tracks WHERE {column} IS NOT NULL"
            f" GROUP BY 1 HAVING count(*) > 1",
        )
        assert duplicated == [], f"duplicate {column}: {duplicated[:5]}"
    # Tracks without identifiers are one per title key.
    duplicated = query(
        url,
        "SELECT title_key, count(*) FROM tracks WHERE isrc IS NULL AND spotify_id IS NULL"
        " GROUP BY 1 HAVING count(*) > 1",
    )
    assert duplicated == [], f"duplicate title keys: {duplicated[:5]}"


def test_csv_import_stores_tracks_through_the_tiers(db_url: str) -> None:
    result = run_import(db_url, FIXTURES / "catalogue.csv", "--format", "csv")
    tracks = query(
        db_url,
        "SELECT title, isrc, spotify_id, duration_ms, bpm, label, release_date::text,"
        " enrichment_status FROM tracks ORDER BY title",
    )
    assert tracks == [
        ("Glue", None, "2aBcDeFgHiJkLmNoPqRsTu", None, None, "Ninja Tune", "2017-09-01", "pending"),
        ("Love Is Not Enough, Again", None, None, None, None, None, None, "pending"),
        (
            "Opus",
            "GBCPL1500002",
            "0ZJbOQzPA8EcPq6O2Ii1kV",
            543000,
            126,
            "Virgin",
            "2016-01-29",
            "pending",
        ),
        (
            "Opus (Four Tet Remix)",
            None,
            "3aBcDeFgHiJkLmNoPqRsTu",
            None,
            None,
            None,
            None,
            "pending",
        ),
        ("Strobe", "CA7H30900001", None, 637000, 128, "mau5trap", "2009-09-22", "pending"),
    ]
    # "deadmau5 - strobe" with the same ISRC unhyphenated is the same track: matched, not new.
    assert summary_value(result.stdout, "inserted / updated").startswith("5 new tracks, 1 matched")
    assert summary_value(result.stdout, "tracks stored by tier") == (
        "isrc 3 = 2 new + 1 matched, spotify 2 = 2 new + 0 matched, title 1 = 1 new + 0 matched"
    )
    credits = query(
        db_url,
        "SELECT a.name, ta.role FROM track_artists ta JOIN artists a ON a.id = ta.artist_id"
        " JOIN tracks t ON t.id = ta.track_id WHERE t.title LIKE 'Love Is Not%' ORDER BY 2, 1",
    )
    assert credits == [("Zoë Johnston", "featured"), ("Above & Beyond", "primary")]


def test_crawl_export_replays_setlists_rows_and_tracks(db_url: str) -> None:
    run_import(db_url, FIXTURES / "crawl_items.jsonl", "--format", "jsonl")
    assert query(db_url, "SELECT source_id, title, djs FROM setlists") == [
        ("demo0001", "Demo DJ @ Demo Festival 2024", ["Demo DJ"])
    ]
    rows = query(
        db_url,
        "SELECT r.row_index, r.is_unknown, t.title, t.isrc, t.spotify_id FROM setlist_tracks r"
        " LEFT JOIN tracks t ON t.id = r.track_id ORDER BY r.row_index",
    )
    assert rows == [
        (0, False, "Apollo", "BEABC2100001", None),
        (1, True, None, None, None),
        (2, False, "Hypnotized (Extended Mix)", None, "4aBcDeFgHiJkLmNoPqRsTu"),
    ]


def test_listenbrainz_export_in_each_container(db_url: str, tmp_path: Path) -> None:
    archive = tmp_path / "listenbrainz_export.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("user.json", json.dumps({"user_name": "someone"}))
        bundle.write(FIXTURES / "listens.jsonl", "listens/2023/11.jsonl")
    run_import(db_url, archive, "--format", "listenbrainz")
    tracks = query(
        db_url,
        "SELECT title, isrc, spotify_id, musicbrainz_id::text, duration_ms, enrichment_status,"
        " metadata->>'release_name' FROM tracks ORDER BY title",
    )
    assert tracks == [
        ("Emerald Rush", None, "6aBcDeFgHiJkLmNoPqRsTu", None, None, "pending", None),
        (
            "Kerala",
            "GBCFB1600101",
            "5aBcDeFgHiJkLmNoPqRsTu",
            "6a6b5d0e-2222-4c1d-8e2f-000000000002",
            276000,
            "pending",
            "Migration",
        ),
        (
            "Last Bloom",
            None,
            None,
            "6a6b5d0e-2222-4c1d-8e2f-000000000006",
            301000,
            "pending",
            "Crush",
        ),
    ]
    # The plain JSON-lines file holds the same listens: nothing new.
    result = run_import(db_url, FIXTURES / "listens.jsonl", "--format", "listenbrainz")
    assert summary_value(result.stdout, "inserted / updated").startswith("0 new tracks")


def test_spotify_history_and_playlists(db_url: str) -> None:
    result = run_import(
        db_url,
        FIXTURES / "Streaming_History_Audio_2023.json",
        FIXTURES / "Playlist1.json",
        "--format",
        "spotify",
    )
    tracks = query(
        db_url, "SELECT title, spotify_id, metadata->>'album' FROM tracks ORDER BY title"
    )
    assert tracks == [
        ("Cola", "9aBcDeFgHiJkLmNoPqRsTu", "Cola"),
        ("Losing It", "AaBcDeFgHiJkLmNoPqRsTu", "Losing It"),
        ("Untitled Dub", None, "White Label"),
        ("Windowlicker", "7aBcDeFgHiJkLmNoPqRsTu", "Windowlicker"),
        ("Xtal", "8aBcDeFgHiJkLmNoPqRsTu", "Selected Ambient Works 85-92"),
    ]
    assert summary_value(result.stdout, "skipped (not tracks)") == "2"
    assert summary_value(result.stdout, "duplicates in input").startswith("2 ")
    assert query(db_url, "SELECT count(*) FROM rejected_items") == [(0,)]


def test_auto_detection_names_each_format(db_url: str) -> None:
    files = sorted(FIXTURES.iterdir())
    result = run_import(db_url, *files)
    expected = {
        "Playlist1.json": "spotify",
        "Streaming_History_Audio_2023.json": "spotify",
        "catalogue.csv": "csv",
        "crawl_items.jsonl": "jsonl",
        "listens.jsonl": "listenbrainz",
    }
    for name, fmt in expected.items():
        assert f"{FIXTURES / name}: detected format {fmt}" in result.stderr
        assert f"file {FIXTURES / name}: {fmt} (auto-detected)" in result.stdout
    assert query(db_url, "SELECT count(*) FROM tracks") == [(15,)]


def test_unknown_file_fails_alone(db_url: str, tmp_path: Path) -> None:
    mystery = tmp_path / "notes.txt"
    mystery.write_text("just some text\n")
    missing = tmp_path / "missing.csv"
    result = run_import(db_url, mystery, missing, FIXTURES / "catalogue.csv", expect=1)
    assert "FAILED" in summary_value(result.stdout, f"file {mystery}")
    assert "FAILED" in summary_value(result.stdout, f"file {missing}")
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("Deadmau5,Strobe\n")
    result = run_import(db_url, headerless, missing, "--format", "csv", expect=1)
    assert "header lacks artist, title" in summary_value(result.stdout, f"file {headerless}")
    assert "No such file" in summary_value(result.stdout, f"file {missing}")
    assert query(db_url, "SELECT count(*) FROM tracks") == [(5,)]


# The default batch holds the whole file, validated in the importer's own process; batches of
# two start the validation process after the first one.
@pytest.mark.parametrize("batch_size", [5000, 2])
def test_bad_rows_are_rejected_with_file_line_and_reason(
    db_url: str, tmp_path: Path, batch_size: int
) -> None:
    catalogue = tmp_path / "bad.csv"
    catalogue.write_bytes(
        b"artist,title,isrc,bpm\n"
        b"Good Artist,Good Title,USRC17607839,128\n"  # 2
        b"No Title,,,\n"  # 3: missing title
        b",No Artist,,\n"  # 4: missing artist
        b"Bad Isrc,Kept Anyway,NOT-AN-ISRC,\n"  # 5: stored, ISRC NULL, raw kept
        b"Nul Byte,Ti\x00tle,,\n"  # 6: NUL byte
        b"Too,Many,Fields,1,2\n"  # 7: unreadable
        b"TuneCore,Not Isrc,TCABC1234567,\n"  # 8: stored, ISRC NULL
        b"No Title,,,\n"  # 9: the same bad row again: rejected again, with its own line
        b"Good Artist,Good Title,USRC17607839,128\n"  # 10: identical to line 2: a duplicate
    )
    listens = tmp_path / "listens.jsonl"
    listens.write_text(
        '{"track_metadata": {"artist_name": "A", "track_name": "B"}}\n'
        "{broken json\n"
        '{"listened_at": 5}\n'
    )
    result = run_import(db_url, catalogue, listens, "--batch-size", batch_size)
    rejected = query(
        db_url, "SELECT origin, location, reason, payload FROM rejected_items ORDER BY id"
    )
    by_location = {location: (origin, reason) for origin, location, reason, _ in rejected}
    assert sorted(by_location) == sorted(
        [f"{catalogue}:{n}" for n in (3, 4, 6, 7, 9)] + [f"{listens}:{n}" for n in (2, 3)]
    )
    assert by_location[f"{catalogue}:3"][1].startswith("missing_title")
    assert by_location[f"{catalogue}:4"][1].startswith("missing_artist")
    assert by_location[f"{catalogue}:6"][1].startswith("nul_byte")
    assert by_location[f"{catalogue}:7"][1] == "unreadable: 5 fields, header has 4"
    assert by_location[f"{listens}:2"][1].startswith("unreadable: invalid JSON")
    assert by_location[f"{listens}:3"][1] == "unreadable: no track_metadata object"
    assert by_location[f"{catalogue}:3"][0] == f"import:{catalogue}"
    payloads = {location: payload for _, location, _, payload in rejected}
    assert payloads[f"{listens}:2"] == "{broken json"
    assert "\\u0000" in payloads[f"{catalogue}:6"]

    stored = query(
        db_url,
        "SELECT title, isrc, metadata->'invalid'->>'isrc' FROM tracks ORDER BY title",
    )
    assert stored == [
        ("B", None, None),
        ("Good Title", "USRC17607839", None),
        ("Kept Anyway", None, "NOT-AN-ISRC"),
        ("Not Isrc", None, "TCABC1234567"),
    ]
    assert summary_value(result.stdout, "rejected") == "7 (see rejected_items)"
    assert summary_value(result.stdout, "duplicates in input").startswith("1 ")
    assert summary_value(result.stdout, "invalid identifiers").startswith("2 ")


def test_a_bad_row_never_stops_an_import(db_url: str, tmp_path: Path) -> None:
    """A 17 MiB field ended the import (exit 1): its file's good rows and later files lost."""
    big_field = b"x" * (17 << 20)
    first = tmp_path / "first.csv"
    first.write_bytes(
        b"artist,title\n"
        b"Before,Kept One\n"  # 2
        b'Big,"' + big_field + b'"\n'  # 3: over the line limit, rejected
        b'Stray,"Quote\n'  # 4: a quote not closed on its line, rejected
        b"After,Kept Two\n"  # 5: read as a row of its own, not part of line 4's title
        b"Later,Kept Three\n"  # 6
    )
    second = tmp_path / "second.csv"
    second.write_text("artist,title\nNext File,Kept Four\n")
    result = run_import(db_url, first, second)
    assert query(db_url, "SELECT title FROM tracks ORDER BY title") == [
        ("Kept Four",),
        ("Kept One",),
        ("Kept Three",),
        ("Kept Two",),
    ]
    rejected = query(
        db_url,
        "SELECT location, reason, octet_length(payload), payload_bytes, payload_sha256"
        " FROM rejected_items ORDER BY location",
    )
    line = b'Big,"' + big_field + b'"'
    assert rejected == [
        (f"{first}:3", f"unreadable: {TOO_LONG}", 64 * 1024, len(line), sha256(line).hexdigest()),
        (
            f"{first}:4",
            f"unreadable: {UNCLOSED_QUOTE}",
            12,
            12,
            sha256(b'Stray,"Quote').hexdigest(),
        ),
    ]
    assert summary_value(result.stdout, "rows read") == "6"
    assert summary_value(result.stdout, "rejected") == "2 (see rejected_items)"
    assert f"{first}:3: rejected: {TOO_LONG}" in result.stderr


def test_unreadable_files_are_named_once_with_what_was_found(db_url: str, tmp_path: Path) -> None:
    excel = tmp_path / "excel.csv"
    excel.write_bytes("artist,title\nA,B\n".encode("utf-16"))
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("Deadmau5,Strobe\n")
    for fmt in ("auto", "csv"):
        result = run_import(db_url, excel, headerless, "--format", fmt, expect=1)
        assert summary_value(result.stdout, f"file {excel}").startswith(
            "FAILED: the file is UTF-16 text (little-endian, byte order mark FF FE)"
        )
        found = summary_value(result.stdout, f"file {headerless}")
        assert str(headerless) not in found
        assert "its first line holds 'Deadmau5', 'Strobe'" in found
        assert found.count("title") == 1
        assert f"{headerless}: {headerless}" not in result.stderr


def test_dry_run_reports_and_writes_nothing(db_url: str, tmp_path: Path) -> None:
    catalogue = tmp_path / "dry.csv"
    catalogue.write_text("artist,title,isrc\nA,One,USRC17607839\nB,,\nC,Three,\n")
    result = run_import(db_url, "--dry-run", catalogue, FIXTURES / "listens.jsonl")
    assert result.stdout.startswith("DRY RUN, nothing written.")
    assert summary_value(result.stdout, "tracks would be stored by tier") == (
        "isrc 3, spotify 1, title 2"
    )
    assert summary_value(result.stdout, "rejected") == "1"
    for table in ("tracks", "rejected_items", "artists", "track_lookup"):
        assert query(db_url, f"SELECT count(*) FROM {table}") == [(0,)], table


def test_reimport_is_idempotent(db_url: str, tmp_path: Path) -> None:
    files = [*sorted(FIXTURES.iterdir()), generate(tmp_path / "catalogue.csv", 3000)]
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"artist": "X", "title": "Y"}\n{nope\n{"artist": "", "title": "Z"}\n')
    run_import(db_url, *files, broken)
    first = snapshot(db_url)
    result = run_import(db_url, *files, broken)
    assert snapshot(db_url) == first
    assert summary_value(result.stdout, "inserted / updated").startswith("0 new tracks")
    assert len(first["rejected"]) == 2
    assert_no_duplicate_tracks(db_url)


@pytest.mark.slow
def test_killed_import_rerun_reaches_the_clean_state(
    make_database, db_url: str, tmp_path: Path
) -> None:
    catalogue = as_jsonl(generate(tmp_path / "big.csv", 20_000))
    clean_url = make_database()
    run_import(clean_url, catalogue, "--batch-size", "500")

    process = start_import(db_url, catalogue, "--batch-size", "500")
    deadline = time.monotonic() + 120
    while query(db_url, "SELECT count(*) FROM tracks")[0][0] < 2000:
        assert process.poll() is None, "the import finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    helpers = child_pids(process.pid)
    assert helpers, "the validation process should be running"
    process.kill()
    # The validation process (and multiprocessing's resource tracker) end with the importer.
    deadline = time.monotonic() + 30
    while any(map(running, helpers)):
        assert time.monotonic() < deadline, "a helper process outlived the killed importer"
        time.sleep(0.05)
    process.communicate(timeout=60)  # a surviving helper would hold its pipes open
    partial = query(db_url, "SELECT count(*) FROM tracks")[0][0]
    assert 0 < partial < query(clean_url, "SELECT count(*) FROM tracks")[0][0]

    run_import(db_url, catalogue, "--batch-size", "500")
    assert snapshot(db_url) == snapshot(clean_url)
    assert_no_duplicate_tracks(db_url)


# A command started with SIGINT ignored keeps it ignored unless it installs a handler: so are
# `cmd &` in a script and everything a test run started that way runs (issue 19, item 13).
SIGINT_IGNORED = ("sh", "-c", 'trap "" INT; exec "$@"', "sh")


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [(), SIGINT_IGNORED], ids=["foreground", "sigint-ignored"])
def test_ctrl_c_stops_cleanly_and_says_how_to_finish(
    db_url: str, tmp_path: Path, launcher: tuple[str, ...]
) -> None:
    catalogue = generate(tmp_path / "big.csv", 20_000)
    process = start_import(db_url, catalogue, "--batch-size", "500", launcher=launcher)
    deadline = time.monotonic() + 120
    while query(db_url, "SELECT count(*) FROM tracks")[0][0] < 1000:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "INTERRUPTED: run the same command again to finish." in stdout
    assert_nothing_half_applied(db_url)


def assert_nothing_half_applied(url: str) -> None:
    """Every stored track has its credits (a batch is one transaction)."""
    orphans = query(
        url,
        "SELECT count(*) FROM tracks t WHERE NOT EXISTS"
        " (SELECT 1 FROM track_artists a WHERE a.track_id = t.id)",
    )
    assert orphans == [(0,)]


@pytest.mark.slow
def test_overlapping_imports_at_the_same_time_make_no_duplicates(
    make_database, db_url: str, tmp_path: Path
) -> None:
    whole = generate(tmp_path / "whole.csv", 12_000)
    lines = whole.read_text().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    # Two files sharing the middle third, the second in reverse order, so that both imports
    # reach the shared tracks at about the same time.
    first = tmp_path / "first.csv"
    second = tmp_path / "second.csv"
    first.write_text(header + "".join(body[: 2 * len(body) // 3]))
    second.write_text(header + "".join(reversed(body[len(body) // 3 :])))

    runs = [start_import(db_url, path, "--batch-size", "700") for path in (first, second)]
    for process in runs:
        _stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
    assert_no_duplicate_tracks(db_url)

    sequential = make_database()
    run_import(sequential, whole)
    count = "SELECT count(*) FROM tracks"
    assert query(db_url, count) == query(sequential, count)
