"""``tracklists-explore`` as a user runs it (``python scripts/explore.py``): its JSON shapes, exit
codes and playlist exports, against a real database."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from scrapers.db.server.connection import connect
from tests.explore_pages import page_items, store

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "explore.py"
GLUE_MBID = "5b11f4ce-a62d-471e-81fc-a69a8278c7da"
GLUE_SPOTIFY = "0aB1cD2eF3gH4iJ5kL6mN7"


@pytest.fixture(scope="module")
def catalogue(make_database: Any) -> str:
    url = make_database()
    store(
        url,
        page_items("c1", ["Bicep - Glue", "Four Tet - Baby", "Bonobo - Kerala"], djs=("Ann",)),
        page_items("c2", ["Bicep - Glue", "Four Tet - Baby"], djs=("Bob",)),
        page_items("c3", ["Bicep - Glue", "Bonobo - Kerala", "ID", "Floorplan - Never"]),
        page_items("c4", ["Caribou - Sun", "Bicep - Glue", "w/ Daphni - Cos"], djs=("Ann",)),
    )
    with closing(connect(url, autocommit=True)) as connection, connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tracks SET isrc = 'GBUM71029604', spotify_id = %s, musicbrainz_id = %s, "
            "duration_ms = 245500, bpm = 124, key = '8A' WHERE title = 'Glue'",
            (GLUE_SPOTIFY, GLUE_MBID),
        )
    return url


def explore(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_track_json_lists_followers_and_predecessors_most_played_first(catalogue: str) -> None:
    done = explore(catalogue, "track", "Bicep - Glue", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["followers"] == [
        {"artist": "Four Tet", "title": "Baby", "sets": 2, "djs": 2},
        {"artist": "Bonobo", "title": "Kerala", "sets": 1, "djs": 1},
    ]
    assert shown["predecessors"] == [{"artist": "Caribou", "title": "Sun", "sets": 1, "djs": 1}]
    assert shown["with"] == [{"artist": "Daphni", "title": "Cos", "sets": 1, "djs": 1}]
    assert shown["track"]["isrc"] == "GBUM71029604"
    assert shown["plays"]["sets"] == 4


def test_path_json_lists_the_steps_from_a_to_b(catalogue: str) -> None:
    done = explore(catalogue, "path", "Caribou - Sun", "Bonobo - Kerala", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "steps": [
            {"artist": "Caribou", "title": "Sun"},
            {"artist": "Bicep", "title": "Glue"},
            {"artist": "Bonobo", "title": "Kerala"},
        ]
    }


@pytest.mark.parametrize(
    "args",
    [
        ["track", "Nobody - Nothing At All"],
        ["path", "Bonobo - Kerala", "Floorplan - Never", "--json"],  # only across an ID row
        ["search", "zzzz qqqq"],
        ["dj", "qqqqqqqq"],
        ["setlist", "nope"],
        ["top", "--genre", "Polka"],
    ],
)
def test_nothing_found_exits_1(catalogue: str, args: list[str]) -> None:
    done = explore(catalogue, *args)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr


def test_a_track_not_found_in_json_prints_nothing_on_stdout_and_says_why(catalogue: str) -> None:
    done = explore(catalogue, "track", "Nobody - Nothing At All", "--json")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.strip() == "no track matches 'Nobody - Nothing At All'"


def test_a_path_not_found_says_why_in_json(catalogue: str) -> None:
    done = explore(catalogue, "path", "Bonobo - Kerala", "Caribou - Sun", "--json")
    assert done.returncode == 1
    shown = json.loads(done.stdout)
    assert shown["steps"] == [] and shown["reason"]


@pytest.mark.parametrize(
    "args",
    [
        ["track"],
        ["track", "Bicep - Glue", "--limit", "0"],
        ["path", "Bicep - Glue", "Bonobo - Kerala", "--max-steps", "11"],
        ["path", "Bicep - Glue", "Bonobo - Kerala", "--bpm-window", "80"],
        ["top", "--since", "2025-13-01"],
        ["top", "--since", "2025-02-01", "--until", "2025-01-01"],
        ["track", "Bicep - Glue", "--format", "xspf"],
        ["search", "x" * 201],
        ["top", "--timeout", "0"],
        # --json or a playlist, not both; no --limit where there is no most-played list
        ["track", "Bicep - Glue", "--json", "--format", "csv"],
        ["setlist", "c1", "--limit", "1"],
        ["path", "Bicep - Glue", "Bonobo - Kerala", "--limit", "1"],
    ],
)
def test_bad_arguments_exit_2(catalogue: str, args: list[str]) -> None:
    done = explore(catalogue, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr


def test_a_query_past_the_timeout_exits_2_saying_so(catalogue: str) -> None:
    """A query waiting on a lock another session holds runs past --timeout as a slow one does."""
    with closing(connect(catalogue)) as holder, holder.cursor() as cursor:
        cursor.execute("LOCK TABLE setlist_tracks IN ACCESS EXCLUSIVE MODE")
        done = explore(catalogue, "top", "--timeout", "0.5")
        holder.rollback()
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.strip() == (
        "error: the query took longer than 0.5 s (--timeout, or narrow it)"
    )


def test_no_database_exits_2_with_one_line(free_port: int) -> None:
    done = explore(f"postgresql://nobody:secret@127.0.0.1:{free_port}/none", "search", "glue")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot read the database") and "secret" not in line


@pytest.fixture
def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_exports_of_a_path_as_jspf_m3u_and_csv(catalogue: str) -> None:
    path = ["path", "Caribou - Sun", "Bonobo - Kerala", "--format"]
    jspf = json.loads(explore(catalogue, *path, "jspf").stdout)["playlist"]
    assert jspf["title"] == "Caribou - Sun to Bonobo - Kerala"
    assert jspf["creator"] and jspf["date"]
    assert [(t["creator"], t["title"]) for t in jspf["track"]] == [
        ("Caribou", "Sun"),
        ("Bicep", "Glue"),
        ("Bonobo", "Kerala"),
    ]
    glue = jspf["track"][1]
    assert glue["duration"] == 245500
    assert glue["identifier"] == [
        f"https://musicbrainz.org/recording/{GLUE_MBID}",
        f"https://open.spotify.com/track/{GLUE_SPOTIFY}",
    ]
    assert glue["extension"] == {
        "https://musicbrainz.org/doc/jspf#track": {
            "additional_metadata": {"isrc": "GBUM71029604", "spotify_id": GLUE_SPOTIFY}
        }
    }
    assert jspf["track"][0]["identifier"] == [] and "extension" not in jspf["track"][0]

    m3u = explore(catalogue, *path, "m3u").stdout.splitlines()
    assert m3u[0] == "#EXTM3U"
    assert m3u[m3u.index("#EXTINF:246,Bicep - Glue") + 1] == f"spotify:track:{GLUE_SPOTIFY}"
    assert m3u[m3u.index("#EXTINF:-1,Caribou - Sun") + 1].startswith(
        "https://open.spotify.com/search/Caribou%20Sun"
    )

    rows = list(csv.DictReader(io.StringIO(explore(catalogue, *path, "csv").stdout)))
    assert [(r["position"], r["artist"], r["title"], r["sets"]) for r in rows] == [
        ("1", "Caribou", "Sun", ""),
        ("2", "Bicep", "Glue", "1"),
        ("3", "Bonobo", "Kerala", "1"),
    ]
    assert (rows[1]["isrc"], rows[1]["bpm"], rows[1]["key"]) == ("GBUM71029604", "124", "8A")


def test_exports_of_a_played_after_list_and_a_setlist(catalogue: str) -> None:
    after = explore(catalogue, "track", "Bicep - Glue", "--format", "csv")
    assert after.returncode == 0
    rows = list(csv.DictReader(io.StringIO(after.stdout)))
    assert [(r["title"], r["sets"]) for r in rows] == [("Glue", ""), ("Baby", "2"), ("Kerala", "1")]
    setlist = explore(catalogue, "setlist", "c3", "--format", "m3u")
    assert setlist.returncode == 0
    extinf = [line for line in setlist.stdout.splitlines() if line.startswith("#EXTINF")]
    assert [line.split(",", 1)[1] for line in extinf] == [  # the ID row has nothing to play
        "Bicep - Glue",
        "Bonobo - Kerala",
        "Floorplan - Never",
    ]


def test_a_reader_that_stops_early_is_no_error(catalogue: str) -> None:
    """``tracklists-explore top | head -1``: the pipe closes before the table is written."""
    reading = subprocess.Popen(
        [sys.executable, str(SCRIPT), "top", "--limit", "200"],
        env={**os.environ, "DATABASE_URL": catalogue},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reading.stdout and reading.stderr
    reading.stdout.close()
    status = reading.wait(timeout=60)
    errors = reading.stderr.read().decode()
    reading.stderr.close()
    assert (status, errors) == (0, "")


def test_a_misspelt_dj_says_the_closest_match_as_a_track_does(catalogue: str) -> None:
    done = explore(catalogue, "dj", "ane")
    assert done.returncode == 0
    assert done.stderr.strip() == "closest match for 'ane': Ann"


def test_search_dj_and_top_in_json(catalogue: str) -> None:
    found = json.loads(explore(catalogue, "search", "bicpe glu", "--json").stdout)
    assert found["results"][0]["title"] == "Glue" and found["results"][0]["sets"] == 4
    dj = json.loads(explore(catalogue, "dj", "ann", "--json").stdout)
    assert dj["name"] == "Ann" and len(dj["sets"]) == 2
    # A transition's ends have the names `top --json` gives them.
    assert {"from", "to"} <= set(dj["top_transitions"][0])
    assert {"artist", "title"} <= set(dj["top_transitions"][0]["from"])
    top = json.loads(explore(catalogue, "top", "--transitions", "--json").stdout)
    assert top["transitions"][0] == {
        "from": {"artist": "Bicep", "title": "Glue"},
        "to": {"artist": "Four Tet", "title": "Baby"},
        "sets": 2,
        "djs": 2,
    }
