"""The explorer's query module on a real PostgreSQL: transitions, co-plays, search, the set
builder, and transitions staying exact through refreshes, merges, their rollback and restore,
and spool replays."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import closing
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from scrapers.db import explore
from scrapers.db.explore import MixRules, camelot, harmonic
from scrapers.db.server import migrations
from scrapers.db.server.connection import connect
from scrapers.pipelines.spool import Spool
from tests.explore_pages import page_items, store, track_id
from tests.test_migration_002 import MIGRATION, execute, insert_tracks, run_script
from tests.test_migration_002 import track_id as numbered_track

REPO = Path(__file__).resolve().parents[1]


def edges(url: str) -> dict[tuple[str, str], tuple[int, int]]:
    """Every transition of the catalogue: ("Artist - Title", "Artist - Title") -> (sets, djs)."""
    with explore.read_only(url) as connection:
        found = explore.top_transitions(connection, limit=explore.MAX_LIMIT)
    return {(_name(t.source), _name(t.target)): (t.plays.sets, t.plays.djs) for t in found}


def _name(track: explore.TrackRef) -> str:
    return f"{track.artist} - {track.title}"


def listed(neighbours: tuple[explore.Neighbour, ...]) -> dict[str, tuple[int, int]]:
    return {_name(n.track): (n.plays.sets, n.plays.djs) for n in neighbours}


# --- what a transition is ----------------------------------------------------------------------


def test_transitions_follow_played_rows_only_and_stop_at_unknown_rows(db_url: str) -> None:
    store(
        db_url,
        page_items(
            "t1",
            [
                "A - One",
                "w/ B - Two",  # played with One: no step One -> Two, nor Two -> Three
                "C - Three",
                "ID",  # unknown: no edge Three -> Four
                "D - Four",
                "E - Five",  # a mashup: its parts are co-plays, not steps
                "+ F - Six",
                "+ G - Seven",
                "Q - ID",  # partly unknown: breaks the chain too
                "A - One",
                "A - One",  # the same track again: no self-edge
                "C - Three",
                "A - One",
                "C - Three",  # One -> Three a second time in the same set: still one set
            ],
            djs=("DJ X",),
        ),
    )
    assert edges(db_url) == {
        ("A - One", "C - Three"): (1, 1),
        ("D - Four", "E - Five"): (1, 1),
        ("C - Three", "A - One"): (1, 1),
    }
    with explore.read_only(db_url) as connection:
        five = explore.neighbourhood(connection, track_id(connection, "E", "Five"))
        two = explore.neighbourhood(connection, track_id(connection, "B", "Two"))
        six = explore.neighbourhood(connection, track_id(connection, "F", "Six"))
    assert listed(five.with_tracks) == {"F - Six": (1, 1), "G - Seven": (1, 1)}
    assert listed(two.with_tracks) == {"A - One": (1, 1)}
    assert listed(six.with_tracks) == {"E - Five": (1, 1), "G - Seven": (1, 1)}
    assert five.followers == () and listed(five.predecessors) == {"D - Four": (1, 1)}


def test_edges_count_distinct_sets_and_djs_with_first_and_last_date(db_url: str) -> None:
    store(
        db_url,
        page_items("a", ["A - One", "B - Two"], djs=("Ann",), date="2024-03-01"),
        page_items("b", ["A - One", "B - Two"], djs=("Ann", "Bob"), date="2025-05-02"),
        page_items("c", ["A - One", "B - Two", "A - One", "C - Three"], djs=("Cy",), date=None),
        page_items("d", ["A - One", "C - Three"], djs=("Bob",), date="2023-01-09"),
    )
    with explore.read_only(db_url) as connection:
        one = track_id(connection, "A", "One")
        found = explore.neighbourhood(connection, one)
        detail = explore.track_detail(connection, one)
    [two, three] = found.followers  # most played first
    assert (_name(two.track), two.plays) == (
        "B - Two",
        explore.Plays(3, 3, date(2024, 3, 1), date(2025, 5, 2)),
    )
    assert (_name(three.track), three.plays.sets, three.plays.djs) == ("C - Three", 2, 2)
    assert listed(found.predecessors) == {"B - Two": (1, 1)}
    assert detail is not None
    assert detail.plays == explore.Plays(4, 3, date(2023, 1, 9), date(2025, 5, 2))
    with explore.read_only(db_url) as connection:
        sizes = explore.plays_of(connection, [one, three.track.id])
        with pytest.raises(ValueError):
            explore.plays_of(connection, [str(uuid.uuid4()) for _ in range(1001)])
    assert (sizes[one].sets, sizes[three.track.id].sets) == (4, 2)
    assert [(dj.name, dj.sets) for dj in detail.top_djs] == [("Ann", 2), ("Bob", 2), ("Cy", 1)]


def test_other_versions_share_the_title_without_version_and_an_artist(db_url: str) -> None:
    store(
        db_url,
        page_items(
            "v",
            [
                *("Bicep - Glue", "Bicep - Glue (Extended Mix)", "Bicep - Glue (Four Tet Remix)"),
                *("Other - Glue", "Bicep - Apricots"),
            ],
        ),
    )
    with explore.read_only(db_url) as connection:
        detail = explore.track_detail(connection, track_id(connection, "Bicep", "Glue"))
    assert detail is not None
    assert sorted(_name(v.track) for v in detail.other_versions) == [
        "Bicep - Glue (Extended Mix)",
        "Bicep - Glue (Four Tet Remix)",
    ]


def test_top_lists_within_a_date_range_a_genre_or_a_dj(db_url: str) -> None:
    one_two, three_two = ["A - One", "B - Two"], ["C - Three", "B - Two"]
    store(
        db_url,
        page_items("g1", one_two, djs=("Ann",), date="2024-06-01", genres=("Techno",)),
        page_items("g2", one_two, djs=("Bob",), date="2025-06-01", genres=("House",)),
        page_items("g3", three_two, djs=("Bob",), date="2025-07-01", genres=("house",)),
    )

    def tops(scope: explore.SetScope) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        with explore.read_only(db_url) as connection:
            tracks = explore.top_tracks(connection, scope)
            transitions = explore.top_transitions(connection, scope)
        return (
            {_name(t.track): t.plays.sets for t in tracks},
            {(_name(t.source), _name(t.target)): t.plays.sets for t in transitions},
        )

    assert tops(explore.SetScope()) == (
        {"B - Two": 3, "A - One": 2, "C - Three": 1},
        {("A - One", "B - Two"): 2, ("C - Three", "B - Two"): 1},
    )
    assert tops(explore.SetScope(since=date(2025, 1, 1))) == (
        {"B - Two": 2, "A - One": 1, "C - Three": 1},
        {("A - One", "B - Two"): 1, ("C - Three", "B - Two"): 1},
    )
    assert tops(explore.SetScope(genre="HOUSE", until=date(2025, 6, 30)))[1] == {
        ("A - One", "B - Two"): 1
    }
    with explore.read_only(db_url) as connection:
        bob = explore.dj_detail(connection, "Bob")
        assert [dj.name for dj in explore.find_djs(connection, "bobb")] == ["Bob"]
        assert explore.dj_detail(connection, "Nobody") is None
        by_id = explore.setlist(connection, bob.sets[0].id)
        by_source = explore.setlist(connection, "g3")
    assert bob is not None and [s.source_id for s in bob.sets] == ["g3", "g2"]  # latest first
    assert {(_name(t.source), _name(t.target)) for t in bob.top_transitions} == {
        ("A - One", "B - Two"),
        ("C - Three", "B - Two"),
    }
    assert by_id == by_source and by_source is not None
    assert [row.track.title for row in by_source.rows if row.track] == ["Three", "Two"]
    with pytest.raises(ValueError):
        explore.SetScope(since=date(2025, 2, 1), until=date(2025, 1, 1))


def test_both_readings_of_a_transition_agree(db_url: str) -> None:
    """``steps`` (a probe per anchor row) and ``steps_in_sets`` (each set in page order) are one
    definition read two ways: on sets with every kind of row, they give the same occurrences."""
    first = ["A - One", "w/ B - Two", "C - Three", "ID", "D - Four", "E - Five", "+ F - Six"]
    first += ["+ G - Seven", "Q - ID", "A - One", "A - One", "C - Three"]
    store(
        db_url,
        page_items("x1", first),
        page_items("x2", ["w/ B - Two", "C - Three", "A - One", "+ B - Two", "C - Three", "ID"]),
        page_items("x3", ["ID", "ID", "E - Five", "w/ F - Six", "w/ G - Seven", "D - Four"]),
    )
    from scrapers.db.explore.transitions import Direction, steps, steps_in_sets

    with closing(connect(db_url)) as connection, connection.cursor() as cursor:
        found = []
        for query in (steps(Direction.AFTER, "true"), steps_in_sets("true")):
            cursor.execute(
                f"SELECT anchor_id, other_id, setlist_id FROM ({query}) o ORDER BY 1, 2, 3"
            )
            found.append(cursor.fetchall())
        cursor.execute(
            f"SELECT other_id, anchor_id, setlist_id FROM ({steps(Direction.BEFORE, 'true')}) o"
            " ORDER BY 1, 2, 3"
        )
        backwards = cursor.fetchall()
    # x1: One -> Three twice, Four -> Five; x2: Three -> One -> Three; x3: Five -> Four.
    assert len(found[0]) == 6
    assert found[0] == found[1] == backwards


# --- exact through everything that changes sets or tracks --------------------------------------


def test_a_refreshed_set_changes_its_transitions(db_url: str) -> None:
    store(db_url, page_items("r", ["A - One", "B - Two", "C - Three"]))
    store(db_url, page_items("r", ["A - One", "ID", "C - Three", "D - Four"]))
    assert edges(db_url) == {("C - Three", "D - Four"): (1, 1)}


def sequence(url: str, setlist: int, tracks: list[int | None], djs: list[str]) -> None:
    """A setlist of numbered tracks (None: an unknown row), written as SQL on schema 001."""
    setlist_id = f"30000000-0000-0000-0000-{setlist:012d}"
    execute(
        url,
        "INSERT INTO setlists (id, source, source_id, djs) VALUES (%s, 'test', %s, %s)",
        (setlist_id, str(setlist), djs),
    )
    for index, number in enumerate(tracks):
        execute(
            url,
            "INSERT INTO setlist_tracks (setlist_id, row_index, track_id, is_unknown)"
            " VALUES (%s, %s, %s, %s)",
            (setlist_id, index, numbered_track(number) if number else None, number is None),
        )


def by_number(url: str, number: int, direction: str) -> dict[str, tuple[int, int]]:
    with explore.read_only(url) as connection:
        found = explore.neighbourhood(connection, numbered_track(number))
    return listed(found.followers if direction == "after" else found.predecessors)


def test_migration_002_sums_the_merged_tracks_transitions_and_its_undoing_splits_them(
    make_database: Any,
) -> None:
    url = make_database("001_initial_schema")
    insert_tracks(
        url,
        [
            *((1, "Song", "GBAAA2400001", None), (2, "Song (dup)", "gb-aaa-24-00001", None)),
            *((3, "Next", None, None), (4, "Before", None, None)),
        ],
    )
    execute(
        url,
        "INSERT INTO track_lookup (raw_artist, raw_title, track_id) VALUES"
        " ('X', 'Song', %s), ('X', 'Song (dup)', %s), ('Y', 'Next', %s), ('Z', 'Before', %s)",
        tuple(numbered_track(n) for n in (1, 2, 3, 4)),
    )
    sequence(url, 1, [1, 3], ["Ann"])
    sequence(url, 2, [2, 3], ["Bob"])
    sequence(url, 3, [4, 2, None, 3], ["Cy"])
    sequence(url, 4, [1, 2], ["Dee"])  # a self-edge once merged
    split = {
        (1, "after"): {"X - Song (dup)": (1, 1), "Y - Next": (1, 1)},
        (2, "after"): {"Y - Next": (1, 1)},
        (2, "before"): {"X - Song": (1, 1), "Z - Before": (1, 1)},
        (3, "before"): {"X - Song": (1, 1), "X - Song (dup)": (1, 1)},
    }
    assert {key: by_number(url, *key) for key in split} == split

    migrations.upgrade(url, target=MIGRATION, on_notice=lambda _: None)
    [(keeper,)] = execute(url, "SELECT id::text FROM tracks WHERE isrc = 'GBAAA2400001'")
    keeper_number = int(keeper[-12:])
    assert by_number(url, keeper_number, "after") == {"Y - Next": (2, 2)}
    assert by_number(url, keeper_number, "before") == {"Z - Before": (1, 1)}
    assert by_number(url, 3, "before") == {"X - Song": (2, 2)}

    migrations.downgrade(url, MIGRATION)
    assert {key: by_number(url, *key) for key in split} == split

    migrations.upgrade(url, target=MIGRATION, on_notice=lambda _: None)
    assert by_number(url, 3, "before") == {"X - Song": (2, 2)}
    restored = run_script(
        REPO / "scripts" / "restore_duplicates.py", url, "--identifier", "GBAAA2400001"
    )
    assert restored.returncode == 0, restored.stderr
    assert {key: by_number(url, *key) for key in split} == split


def test_a_spool_replay_gives_the_transitions_once(db_url: str, tmp_path: Path) -> None:
    spool = Spool(tmp_path, "crawl")
    spool.append(page_items("s", ["A - One", "w/ B - Two", "C - Three"], djs=("Ann",)))
    spool.close()
    assert spool.path is not None
    for _ in range(2):  # replayed twice: the second changes nothing
        done = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "import_tracks.py"), str(spool.path)],
            env={**os.environ, "DATABASE_URL": db_url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert edges(db_url) == {("A - One", "C - Three"): (1, 1)}


# --- search ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalogue(make_database: Any) -> str:
    """A few sets for search and path tests, stored once for the module."""
    url = make_database()
    glue, baby, marea = "Bicep - Glue", "Four Tet - Baby", "Fred again.. - Marea"
    buggin, kerala, strobe = "Hot Since 82 - Buggin", "Bonobo - Kerala", "deadmau5 - Strobe"
    store(
        url,
        page_items("p1", [glue, baby, marea, buggin], djs=("Ann",)),
        page_items("p2", [glue, baby, marea], djs=("Bob",)),
        page_items("p3", [glue, kerala, buggin], djs=("Cy",)),
        page_items("p4", [marea, buggin, strobe], djs=("Dee",)),
        page_items("p5", [kerala, strobe], djs=("Eve",)),
    )
    with closing(connect(url, autocommit=True)) as connection, connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tracks SET isrc = 'GBUM71029604', spotify_id = '0aB1cD2eF3gH4iJ5kL6mN7' "
            "WHERE title = 'Glue'"
        )
    return url


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Bicep - Glue", "Bicep - Glue"),  # exact artist + title
        ("bicpe glu", "Bicep - Glue"),  # two typos
        ("stobe", "deadmau5 - Strobe"),
        ("fred agian marea", "Fred again.. - Marea"),
        ("GB-UM7-10-29604", "Bicep - Glue"),  # ISRC, any spelling
        ("https://open.spotify.com/track/0aB1cD2eF3gH4iJ5kL6mN7", "Bicep - Glue"),
    ],
)
def test_search_finds_tracks_despite_typos_and_by_identifier(
    catalogue: str, query: str, expected: str
) -> None:
    with explore.read_only(catalogue) as connection:
        hits = explore.search_tracks(connection, query, 5)
    assert hits and _name(hits[0].track) == expected


def test_search_refuses_empty_and_overlong_text(catalogue: str) -> None:
    with explore.read_only(catalogue) as connection:
        for query in ("   ", "x" * 201):
            with pytest.raises(explore.SearchQueryError):
                explore.search_tracks(connection, query)
        assert explore.search_tracks(connection, "zzzz qqqq xxxx") == ()
        # Text that means something to tsquery or LIKE is only text.
        [first, *_] = explore.search_tracks(connection, "(bicep) & 'glue'! \\ | : * % _")
        assert _name(first.track) == "Bicep - Glue"


# --- the set builder ---------------------------------------------------------------------------


def path_names(url: str, source: str, target: str, **options: Any) -> list[str]:
    with explore.read_only(url) as connection:
        ends = [explore.search_tracks(connection, name, 1)[0].track.id for name in (source, target)]
        path = explore.build_path(connection, *ends, **options)
    return [_name(step.track) for step in path.steps]


def test_path_takes_fewest_steps_then_the_most_played_edges(catalogue: str) -> None:
    # Glue -> Baby -> Marea -> Buggin is played more (2 + 2 + 2 sets) than Glue -> Kerala ->
    # Buggin (1 + 1), but it is 3 steps: fewest steps first.
    assert path_names(catalogue, "Bicep - Glue", "Hot Since 82 - Buggin") == [
        "Bicep - Glue",
        "Bonobo - Kerala",
        "Hot Since 82 - Buggin",
    ]
    assert path_names(catalogue, "Bicep - Glue", "deadmau5 - Strobe") == [
        "Bicep - Glue",
        "Bonobo - Kerala",
        "deadmau5 - Strobe",
    ]
    assert path_names(catalogue, "Fred again.. - Marea", "deadmau5 - Strobe") == [
        "Fred again.. - Marea",
        "Hot Since 82 - Buggin",
        "deadmau5 - Strobe",
    ]
    assert path_names(catalogue, "Bicep - Glue", "Hot Since 82 - Buggin", max_steps=1) == []
    assert path_names(catalogue, "deadmau5 - Strobe", "Bicep - Glue") == []  # never played on


def test_path_prefers_the_most_played_among_the_shortest(db_url: str) -> None:
    store(
        db_url,
        page_items("m1", ["A - Start", "B - Rare", "Z - End"]),
        page_items("m2", ["A - Start", "C - Common", "Z - End"]),
        page_items("m3", ["A - Start", "C - Common", "Z - End"], djs=("DJ Two",)),
    )
    assert path_names(db_url, "A - Start", "Z - End") == ["A - Start", "C - Common", "Z - End"]


def test_path_rules_skip_steps_out_of_the_bpm_window_or_off_the_wheel(db_url: str) -> None:
    store(
        db_url,
        page_items("k1", ["A - Start", "B - Fast", "Z - End"]),
        page_items("k2", ["A - Start", "B - Fast", "Z - End"]),
        page_items("k3", ["A - Start", "C - Slow", "Z - End"]),
        page_items("k4", ["A - Start", "D - Clash", "Z - End"]),
    )
    attributes = {
        "Start": (124, "8A"),
        "Fast": (140, "8A"),  # +13 %: out of a 6 % window
        "Slow": (128, "2B"),  # +3 %, but 8A -> 2B is no neighbour
        "Clash": (126, "9A"),  # +1.6 %, 8A -> 9A: one step round the wheel
        "End": (125, "9B"),
    }
    with closing(connect(db_url, autocommit=True)) as connection, connection.cursor() as cursor:
        for title, (bpm, key) in attributes.items():
            cursor.execute(
                "UPDATE tracks SET bpm = %s, key = %s WHERE title = %s", (bpm, key, title)
            )
    assert path_names(db_url, "A - Start", "Z - End")[1] == "B - Fast"  # most played
    assert path_names(db_url, "A - Start", "Z - End", rules=MixRules(bpm_window=6))[1] in (
        "C - Slow",
        "D - Clash",
    )
    both = MixRules(bpm_window=6, harmonic_keys=True)
    assert path_names(db_url, "A - Start", "Z - End", rules=both) == [
        "A - Start",
        "D - Clash",
        "Z - End",
    ]
    assert path_names(db_url, "A - Start", "Z - End", rules=MixRules(bpm_window=0.5)) == []
    # Why none: the rules, not "no DJ played on from there" (DJs did play on from Start).
    with explore.read_only(db_url) as connection:
        start, end = (
            explore.search_tracks(connection, n, 1)[0].track.id for n in ("A - Start", "Z - End")
        )
        ruled = explore.build_path(connection, start, end, rules=MixRules(bpm_window=0.5))
    assert ruled.reason == "no path that keeps a BPM window of ±0.5 %"


def test_path_limits_are_checked(catalogue: str) -> None:
    with explore.read_only(catalogue) as connection:
        some = explore.search_tracks(connection, "Bicep - Glue", 1)[0].track.id
        for steps in (0, 11, True):
            with pytest.raises(ValueError):
                explore.build_path(connection, some, some, max_steps=steps)
        assert len(explore.build_path(connection, some, some).steps) == 1
    with pytest.raises(ValueError):
        MixRules(bpm_window=-1)


@pytest.mark.parametrize(
    ("key", "wheel"),
    [
        ("8A", "8A"),
        ("08a", "8A"),
        ("12B", "12B"),
        ("Am", "8A"),
        ("A minor", "8A"),
        ("C", "8B"),
        ("C major", "8B"),
        ("F#m", "11A"),
        ("Gbm", "11A"),
        ("Db", "3B"),
        ("C#", "3B"),
        ("Ebm", "2A"),
        ("B", "1B"),
        ("G#m", "1A"),
        ("Abm", "1A"),
        ("E", "12B"),
        ("C#m", "12A"),
        ("Bb", "6B"),
        ("F♯ minor", "11A"),
        ("13A", None),
        ("H", None),
        ("", None),
    ],
)
def test_camelot_mapping(key: str, wheel: str | None) -> None:
    found = camelot(key)
    assert (str(found) if found else None) == wheel


@pytest.mark.parametrize(
    ("first", "second", "mixes"),
    [
        ("8A", "8A", True),
        ("8A", "8B", True),
        ("8A", "7A", True),
        ("8A", "9A", True),
        ("8A", "9B", False),
        ("8A", "10A", False),
        ("12A", "1A", True),
        ("1B", "12B", True),
        ("Am", "C", True),
        ("Am", "Em", True),
        ("Am", "F#m", False),
    ],
)
def test_harmonic_neighbours(first: str, second: str, mixes: bool) -> None:
    a, b = camelot(first), camelot(second)
    assert a and b and harmonic(a, b) is mixes
