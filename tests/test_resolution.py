"""The tiers of track resolution, as tables of inputs and expected outcomes: no database.

Each case names the stored tracks (the candidates a batch's query would fetch, oldest first)
and the items of one batch in order; it expects, per item, the track it resolved to (a stored
one by name, or ``new1``, ``new2``… in order of creation) and how it was matched.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scrapers import identity
from scrapers.db.write import records
from scrapers.db.write.records import TrackRecord
from scrapers.db.write.resolution import Resolution, Track
from scrapers.metrics import MatchTier

ISRC = "USRC12345678"
OTHER_ISRC = "GBAYE0000001"
SPOTIFY = "4uLU6hMCjMI75M1A2tKUQC"
OTHER_SPOTIFY = "7ouMYWpwJ422jRcDASZB7P"

ISRC_T = MatchTier.ISRC
SPOTIFY_T = MatchTier.SPOTIFY
SPELLING_T = MatchTier.SPELLING
TITLE_T = MatchTier.TITLE
NEW_T = MatchTier.NEW


def item(artist: str, title: str, **fields: Any) -> TrackRecord:
    record = records.to_record({"artist_name": artist, "track_name": title, **fields})
    assert isinstance(record, TrackRecord)
    return record


def stored(
    name: str,
    artist: str | None = "Artist",
    title: str = "Song",
    *,
    isrc: str | None = None,
    spotify_id: str | None = None,
) -> tuple[str, Track]:
    """A stored track; ``artist`` None: a row from before title keys."""
    key = identity.title_key(artist, title) if artist is not None else None
    return name, Track(f"00000000-0000-7000-8000-{len(name):012d}{name}", isrc, spotify_id, key)


CASES = {
    "isrc finds any spelling": (
        [stored("a", isrc=ISRC)],
        [item("Someone Else", "Other Name", isrc="us-rc1-23-45678")],
        [("a", ISRC_T)],
    ),
    "spotify when no isrc": (
        [stored("a", spotify_id=SPOTIFY)],
        [item("Artist", "Another spelling", spotify_id=SPOTIFY)],
        [("a", SPOTIFY_T)],
    ),
    "spotify owner with another isrc is a different recording": (
        [stored("a", isrc=OTHER_ISRC, spotify_id=SPOTIFY)],
        [item("Other", "Thing", isrc=ISRC, spotify_id=SPOTIFY)],
        [("new1", NEW_T)],
    ),
    "title key across feat. spellings": (
        [stored("a", "Armin van Buuren feat. Fiora", "Waiting For The Night")],
        [item("Armin van Buuren", "Waiting For The Night (feat. Fiora)")],
        [("a", TITLE_T)],
    ),
    "title key skips a contradicting isrc": (
        [stored("a", isrc=OTHER_ISRC), stored("b")],
        [item("Artist", "Song", isrc=ISRC)],
        [("b", TITLE_T)],
    ),
    "remix is another recording": (
        [stored("a")],
        [item("Artist", "Song (X Remix)")],
        [("new1", NEW_T)],
    ),
    "oldest title match wins": (
        [stored("a"), stored("b")],
        [item("Artist", "Song")],
        [("a", TITLE_T)],
    ),
    "a row from before title keys is found by isrc and gets its key": (
        [stored("a", None, isrc=ISRC)],
        [item("Artist", "Song", isrc=ISRC), item("Artist", "Song (Radio)")],
        [("a", ISRC_T), ("new1", NEW_T)],
    ),
    "in-batch dedupe: a spelling seen earlier in the batch": (
        [],
        [item("Artist", "Song"), item("Artist", "Song", bpm=128)],
        [("new1", NEW_T), ("new1", SPELLING_T)],
    ),
    "in-batch dedupe: an isrc created earlier in the batch": (
        [],
        [item("A", "One", isrc=ISRC), item("B", "Two", isrc=ISRC)],
        [("new1", NEW_T), ("new1", ISRC_T)],
    ),
    "in-batch: a later item gives the new track its spotify id": (
        [],
        [
            item("A", "One"),
            item("A", "ONE", spotify_id=SPOTIFY),
            item("Z", "Other", spotify_id=SPOTIFY),
        ],
        [("new1", NEW_T), ("new1", TITLE_T), ("new1", SPOTIFY_T)],
    ),
    "the isrc tier outranks a different spotify owner": (
        [stored("a", isrc=ISRC), stored("b", "B", "Other", spotify_id=SPOTIFY)],
        [item("C", "Third", isrc=ISRC, spotify_id=SPOTIFY)],
        [("a", ISRC_T)],
    ),
    "a known spelling with another spotify id is not followed": (
        [stored("a", spotify_id=OTHER_SPOTIFY)],
        [
            item("Artist", "Song", spotify_id=OTHER_SPOTIFY),
            item("Artist", "Song", spotify_id=SPOTIFY),
        ],
        [("a", SPOTIFY_T), ("new1", NEW_T)],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_resolution(case: str) -> None:
    candidates, batch, expected = CASES[case]
    resolution = Resolution()
    names = {}
    for name, track in candidates:
        resolution.add(track)
        names[track.id] = name
    outcome = []
    for record in batch:
        track, tier = resolution.resolve(record)
        if track.id not in names:
            names[track.id] = f"new{sum(n.startswith('new') for n in names.values()) + 1}"
        outcome.append((names[track.id], tier))
    assert outcome == expected


CONFLICTS = {
    "a stored isrc is never overwritten": (
        [stored("a", spotify_id=SPOTIFY, isrc=OTHER_ISRC)],
        item("Artist", "Song", spotify_id=SPOTIFY),
        [],
        {"isrc": OTHER_ISRC, "spotify_id": SPOTIFY},
    ),
    "an identifier owned by another track stays there": (
        [stored("a", isrc=ISRC), stored("b", "B", "Other", spotify_id=SPOTIFY)],
        item("C", "Third", isrc=ISRC, spotify_id=SPOTIFY),
        [("spotify_id", "kept_on_other_track")],
        {"isrc": ISRC, "spotify_id": None},
    ),
    "an empty identifier is filled": (
        [stored("a")],
        item("Artist", "Song", isrc=ISRC, spotify_id=SPOTIFY),
        [],
        {"isrc": ISRC, "spotify_id": SPOTIFY},
    ),
}


@pytest.mark.parametrize("case", CONFLICTS)
def test_identifier_policy(case: str) -> None:
    candidates, record, expected_conflicts, expected_ids = CONFLICTS[case]
    resolution = Resolution()
    for _, track in candidates:
        resolution.add(track)
    track, _ = resolution.resolve(record)
    assert [(c.identifier_type, c.resolution) for c in resolution.conflicts] == expected_conflicts
    assert {"isrc": track.isrc, "spotify_id": track.spotify_id} == expected_ids


def test_new_spellings_are_remembered_once_for_the_first_track() -> None:
    resolution = Resolution()
    first, _ = resolution.resolve(item("Artist", "Song"))
    resolution.resolve(item("Artist", "Song", bpm=120))
    resolution.resolve(item("artist", "song"))
    assert resolution.new_spellings == {("Artist", "Song"): first.id, ("artist", "song"): first.id}


def test_resolution_is_pure_it_imports_nothing_that_uses_the_database() -> None:
    """The tiers run in memory: importing them loads no database driver (psycopg2)."""
    probe = (
        "import sys, scrapers.db.write.resolution;"
        " print(sorted(m for m in sys.modules if m.split('.')[0] == 'psycopg2'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == "[]"
