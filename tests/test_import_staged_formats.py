"""``--bulk`` against the shared mode for every format but CSV: JSONL of this project's items
(setlists and the rows placed in them included), ListenBrainz and Spotify exports.

Built on ``tests.test_import_staged``: the same files through both modes, every table compared
by natural keys, the setlists and their rows column by column, the known rows' digests and the
runs' counts. The JSONL files hold what the order of a file decides: a setlist row before the
plain row of the same track spelled differently (the track's title, credits and merged values
come from the first), a placed row's ISRC under another title key, an artist first spelled by a
setlist row and also credited by a simple group, "ID" rows, rows past a set's end, a set named
after its rows, repeats, refusals, broken lines, and a few thousand of the bench's rows.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from scrapers.importers import staged
from tests.test_import import FIXTURES, query
from tests.test_import_staged import bench_files, counts, import_both_ways

SET_ONE = {"setlist_source": "1001tracklists", "setlist_source_id": "s1"}
SET_TWO = {"setlist_source": "1001tracklists", "setlist_source_id": "s2"}
FIRST: list[dict[str, Any] | str] = [
    # A row of a set before the set itself, and before a plain row of its track spelled
    # otherwise: the track is the setlist row's.
    {
        **SET_ONE,
        "row_index": 0,
        "position": 1,
        "artist": "DJ ALPHA",
        "title": "Opening Tune",
        "bpm": 120,
        "label": "First",
        "fetched_at": "2026-01-01T10:00:00+00:00",
    },
    {"artist": "dj alpha", "title": "opening tune", "bpm": 124, "genre": "Techno"},
    {
        "source": "1001tracklists",
        "source_id": "s1",
        "title": "Alpha @ Club",
        "djs": ["DJ Alpha"],
        "date": "2026-01-01",
        "row_count": 4,
        "fetched_at": "2026-01-01T10:00:00+00:00",
    },
    {**SET_ONE, "row_index": 1, "artist": "ID", "title": "ID", "is_unknown": True},
    {
        **SET_ONE,
        "row_index": 2,
        "position": 2,
        "artist": "Beta",
        "title": "Shared Isrc",
        "isrc": "GBAAA0000100",
        "cue_seconds": 300,
    },
    {"artist": "Beta Other", "title": "Other Title", "isrc": "GB-AAA-00-00100"},
    {
        **SET_ONE,
        "row_index": 3,
        "artist": "Delta",
        "title": "Last Row",
        "played_with_previous": True,
    },
    # Past the set's end (row_count 4): written, then removed in the same batch.
    {**SET_ONE, "row_index": 4, "artist": "Epsilon", "title": "Gone"},
    # A simple group crediting the artist the first setlist row spelled.
    {"artist": "Gamma feat. Dj Alpha", "title": "Simple One"},
    {
        "artist": "Zeta",
        "title": "Plain",
        "artists": [{"name": "Zeta", "role": "primary"}, {"name": "Eta", "role": "remixer"}],
        "metadata": {"source": "export"},
    },
    {
        "artist": "Theta",
        "title": "Odd Values",
        "isrc": "NOTANISRC",
        "musicbrainz_id": "not-a-uuid",
        "release_date": "2019",
    },
    {
        "artist": "Theta",
        "title": "Odd Values",
        "isrc": "NOTANISRC",
        "musicbrainz_id": "not-a-uuid",
        "release_date": "2019",
    },
    {**SET_TWO, "row_index": 0, "artist": "Zeta", "title": "Plain", "label": "Set Label"},
    {**SET_TWO, "row_index": 1, "artist": "Iota", "title": "Partial", "is_partial_id": True},
    {**SET_TWO, "row_index": 0, "artist": "Zeta", "title": "Plain", "label": "Set Label"},
    {"artist": "Kappa", "title": ""},
    {"artist": "Omicron", "title": "Bad BPM", "bpm": "fast"},
    {**SET_TWO, "artist": "Lambda", "title": "No Index"},
    {"artist": "ID", "title": "ID"},
    {"artist": "Mu", "title": "Nul \u0000 Byte"},
    '{"artist": "Broken", ',
    "[1, 2]",
]
SECOND: list[dict[str, Any] | str] = [
    # Updates of stored tracks through a set's rows and plain rows, a newer fetch of a set.
    {
        **SET_ONE,
        "row_index": 0,
        "artist": "DJ Alpha",
        "title": "Opening Tune",
        "bpm": 126,
        "fetched_at": "2026-02-01T10:00:00+00:00",
    },
    {
        "source": "1001tracklists",
        "source_id": "s1",
        "title": "Alpha @ Club (refreshed)",
        "row_count": 2,
        "fetched_at": "2026-02-01T10:00:00+00:00",
    },
    {"artist": "Gamma feat. DJ Alpha", "title": "Simple One", "label": "Later"},
    {"source": "1001tracklists", "source_id": "s3", "title": "Only A Set"},
    {"artist": "dj alpha", "title": "opening tune", "bpm": 124, "genre": "Techno"},
    {"artist": "Nu", "title": "New Track", "spotify_id": "4uLU6hMCjMI75M1A2tKUQC"},
]


def write_jsonl(path: Path, lines: list[dict[str, Any] | str], bench: Path) -> Path:
    """``lines`` then the bench file's rows, one JSON object (or raw text) a line."""
    with path.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
        for row in bench_rows(bench):
            handle.write(json.dumps(row) + "\n")
    return path


def bench_rows(bench: Path) -> list[dict[str, str]]:
    with bench.open(encoding="utf-8") as handle:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(handle)]


def write_listens(path: Path, bench: Path) -> Path:
    """The fixture's listens, then the bench file's rows as listens (JSON lines)."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write((FIXTURES / "listens.jsonl").read_text(encoding="utf-8"))
        for number, row in enumerate(bench_rows(bench)):
            info = {k: row[k] for k in ("isrc", "duration_ms") if k in row}
            if "spotify_id" in row:
                spotify = row["spotify_id"].removeprefix("spotify:track:")
                info["spotify_id"] = f"https://open.spotify.com/track/{spotify}"
            # Each track listened to twice: without its identifiers, then with them.
            metadata = {"artist_name": row["artist"], "track_name": row["title"]}
            listen = {"listened_at": 1_700_000_000 + number, "track_metadata": metadata}
            handle.write(json.dumps(listen) + "\n")
            metadata["additional_info"] = info
            handle.write(json.dumps(listen) + "\n")
    return path


def write_history(path: Path, bench: Path) -> Path:
    """A Spotify streaming history: the fixture's plays, then the bench file's rows."""
    plays = json.loads((FIXTURES / "Streaming_History_Audio_2023.json").read_text("utf-8"))
    for number, row in enumerate(bench_rows(bench)):
        spotify = row.get("spotify_id", "").removeprefix("spotify:track:")
        plays.append(
            {
                "ts": f"2024-01-01T00:{number // 60 % 60:02d}:{number % 60:02d}Z",
                "ms_played": 1000 + number,
                "master_metadata_track_name": row["title"],
                "master_metadata_album_artist_name": row["artist"],
                "master_metadata_album_album_name": row.get("label"),
                "spotify_track_uri": f"spotify:track:{spotify}" if spotify else None,
            }
        )
    path.write_text(json.dumps(plays), encoding="utf-8")
    return path


SETLIST_COLUMNS = {
    "setlists": """
        SELECT source, source_id, url, title, djs, event, set_date, genres, stated_track_count,
               content_hash, row_count, fetched_at
        FROM setlists ORDER BY 1, 2""",
    "setlist_rows": """
        SELECT s.source_id, r.row_index, r.position, r.played_with_previous, r.is_mashup,
               r.mashup_parent_row, r.cue_seconds, r.raw_artist, r.raw_title, r.label,
               r.site_track_id, r.is_unknown, r.is_partial_id, t.title, t.isrc
        FROM setlist_tracks r JOIN setlists s ON s.id = r.setlist_id
        LEFT JOIN tracks t ON t.id = r.track_id ORDER BY 1, 2""",
}


def test_bulk_stores_the_shared_modes_catalogue_from_jsonl_with_setlists(
    make_database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chunks of 1,000 rows: the validation process validates one while the next is read.
    monkeypatch.setattr(staged, "ITEM_CHUNK_ROWS", 1000)
    bench_one, bench_two = bench_files(tmp_path, 2000, 8, 9)
    files = [
        write_jsonl(tmp_path / "first.jsonl", FIRST, bench_one),
        write_jsonl(tmp_path / "second.jsonl", SECOND, bench_two),
        tmp_path / "first.jsonl",
    ]
    shared, bulk, shared_runs = import_both_ways(
        make_database, [(path, "jsonl") for path in files], validation_process=True
    )
    for statement in SETLIST_COLUMNS.values():
        assert query(bulk, statement) == query(shared, statement)
    # The files hold what the comparison is about.
    assert query(shared, "SELECT title FROM tracks WHERE title_key LIKE '%opening tune%'") == [
        ("Opening Tune",)
    ]
    assert query(shared, "SELECT name FROM artists WHERE normalized_name = 'dj alpha'") == [
        ("DJ ALPHA",)
    ]
    first = counts(shared_runs[0])
    assert first[1] > 0 and first[3] == 2 and len(first[7]) >= 4 and first[9] > 0
    assert shared_runs[0].stored.setlists > 0 and shared_runs[1].stored.setlist_rows > 0
    assert counts(shared_runs[1])[2] > 0 and counts(shared_runs[1])[6] > 0  # known, updated


def test_bulk_stores_the_shared_modes_catalogue_from_listenbrainz_and_spotify(
    make_database, tmp_path: Path
) -> None:
    (bench,) = bench_files(tmp_path, 2000, 10)
    (other,) = bench_files(tmp_path, 500, 11)
    # A history cut short after a play: its array is never closed, and the reader stops
    # there; what was read before is stored, and the file is reported as failed.
    cut = write_history(tmp_path / "cut.json", other)
    text = cut.read_bytes()
    cut.write_bytes(text[: text.rindex(b"}, {") + 2])
    runs = [
        (write_listens(tmp_path / "listens.jsonl", bench), "listenbrainz"),
        (write_history(tmp_path / "history.json", bench), "spotify"),
        (FIXTURES / "Playlist1.json", "spotify"),
        (cut, "spotify"),
        (tmp_path / "listens.jsonl", "listenbrainz"),
    ]
    _, _, shared_runs = import_both_ways(make_database, runs)
    # Spotify's plays of the listens' tracks match them (known spellings, Spotify IDs), its
    # podcasts are skipped, the cut history stored its rows before the cut, and the listens
    # again are all known or repeats.
    assert counts(shared_runs[1])[6] > 0 and shared_runs[1].skipped
    assert "not closed" in str(shared_runs[3].files[0].error)
    assert counts(shared_runs[3])[4] > 300
    assert counts(shared_runs[4])[4:7] == (0, 0, 0)
