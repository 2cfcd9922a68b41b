"""The explorer on real pages: crawled through Scrapy into a database, the edges it gives are the
ones a person reads on the page.

The tables below were written by reading each saved page (``../shared/samples``): a "w/" row is
played with the row above and is no step; an unknown row ("ID - ID", "Cave Studio - ID") breaks
the chain; a mashup's parts are co-plays of the mashup row. Matroda's page is also stored a second
time under another tracklist id with another DJ: its edges then count 2 sets and 2 DJs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scrapers.db import explore
from tests.test_spider_crawl import scrapy_crawl

MATRODA = "pmaxhogan__tracked__tracklist-matroda.html"
DEADMAU5 = "Rouzax__CrateDigger__deadmau5_tomorrowland_brasil_2025.html"
ARMIN = "Rouzax__CrateDigger__armin_marlon_ultra_miami_2026.html"

# Matroda @ Club Space Miami 2023-08-05: row 09 is "Cave Studio - ID" (no edge 08 -> 09 -> 10);
# "Round Table Knights & Bauchamp - Calypso" is a "w/" row under 24 (24 -> 25 stays an edge);
# row 19 shows "(ID Remix)" after the title: an unidentified remix of a known track, a track.
MATRODA_EDGES = [
    ("Igor Zanga - Nobody (Matroda Edit)", "TOBEHONEST - Where Ya At"),
    ("TOBEHONEST - Where Ya At", "Bleu Clair - Boom Boom"),
    ("Bleu Clair - Boom Boom", "KENO - Pop It"),
    ("KENO - Pop It", "Matroda - Can't Fight The Feeling"),
    ("Matroda - Can't Fight The Feeling", "BLR ft. Robbie Rise - Lipstick (Matroda Remix)"),
    ("BLR ft. Robbie Rise - Lipstick (Matroda Remix)", "Matroda ft. MERYLL - No Sleep (6AM)"),
    ("Matroda ft. MERYLL - No Sleep (6AM)", "Peggy Gou - (It Goes Like) Nanana (Matroda Remix)"),
    (
        "Green Velvet - Bigger Than Prince (Classmatic 2K23 Remix)",
        "Fantta - Medellin (Matroda Edit)",
    ),
    ("Fantta - Medellin (Matroda Edit)", "HUGEL ft. Cumbiafrica - Morenita (Matroda Remix)"),
    ("HUGEL ft. Cumbiafrica - Morenita (Matroda Remix)", "Buitano - Rakata"),
    ("Buitano - Rakata", "Bleu Clair - m.A.A.d City"),
    ("Bleu Clair - m.A.A.d City", "Matroda - Came To The Club"),
    ("Matroda - Came To The Club", "Des & Del - Como?"),
    (
        "Des & Del - Como?",
        "Metro Boomin ft. Future & Chris Brown - Superhero (Heroes & Villains) (Matroda Remix)",
    ),
    (
        "Metro Boomin ft. Future & Chris Brown - Superhero (Heroes & Villains) (Matroda Remix)",
        "Matroda - Pump Up The Volume",
    ),
    ("Matroda - Pump Up The Volume", "Armand van Helden - I Want Your Soul (ID Remix)"),
    ("Armand van Helden - I Want Your Soul (ID Remix)", "Mary Klup - Placer"),
    ("Mary Klup - Placer", "Dennis Cruz ft. Martina Camargo - El Sueño (Matroda Remix)"),
    ("Dennis Cruz ft. Martina Camargo - El Sueño (Matroda Remix)", "Matroda - Main Ingredients"),
    ("Matroda - Main Ingredients", "Martha Wash - Catch The Light (Matroda Remix)"),
    ("Martha Wash - Catch The Light (Matroda Remix)", "Odd Mob - LEFT TO RIGHT (Aidan Rudd Remix)"),
    ("Odd Mob - LEFT TO RIGHT (Aidan Rudd Remix)", '"XY" - La Fiesta'),
    ('"XY" - La Fiesta', "Matroda & Martin Ikin & Sian Lee - 4U"),
    ("Matroda & Martin Ikin & Sian Lee - 4U", "Andruss & HUGEL ft. Fatboi - Pega"),
]

# deadmau5 @ Tomorrowland Brasil 2025: five "w/" rows, under 04, 05 and 08.
DEADMAU5_EDGES = [
    ("ARTBAT - Artefact", "No Mana - Array of Sirens"),
    ("No Mana - Array of Sirens", "deadmau5 ft. Lights - When The Summer Dies"),
    ("deadmau5 ft. Lights - When The Summer Dies", "deadmau5 - Moar Ghosts 'n' Stuff"),
    ("deadmau5 - Moar Ghosts 'n' Stuff", "deadmau5 - Maths"),
    ("deadmau5 - Maths", "deadmau5 - Rydly"),
    ("deadmau5 - Rydly", "deadmau5 - Some Chords (Dillon Francis Remix)"),
    ("deadmau5 - Some Chords (Dillon Francis Remix)", "deadmau5 - Cthulhu Sleeps"),
    ("deadmau5 - Cthulhu Sleeps", "deadmau5 - Quezacotl"),
    ("deadmau5 - Quezacotl", "deadmau5 ft. Stevie Appleton - Science"),
    ("deadmau5 ft. Stevie Appleton - Science", "deadmau5 - 8ths"),
]
DEADMAU5_WITH = {
    "deadmau5 - Moar Ghosts 'n' Stuff": {
        "deadmau5 ft. Rob Swire - Ghosts 'n' Stuff (JAUZ Remix)",
        "deadmau5 ft. Rob Swire - Ghosts 'n' Stuff (Chuckie Remix)",
        "deadmau5 ft. Rob Swire - Ghosts 'n' Stuff",
    },
    "deadmau5 - Maths": {"deadmau5 - Maths (Cobra Effect Remix)"},
    "deadmau5 - Cthulhu Sleeps": {"Kx5 ft. HAYLA - Escape (Spencer Brown Remix)"},
}

# Armin van Buuren b2b Marlon Hoffstadt @ Ultra Miami 2026 (two DJs: each edge 1 set, 2 DJs):
# "ID - ID" at 05 and 12; mashups at 18 (two parts) and 26 (three parts), played with them.
LOVE_PARADE = (
    "Dimitri Vegas & Like Mike & Maddix & Da Hool ft. Kiki Solvej - Meet Her At The Love Parade"
)
ARMIN_EDGES = [
    (
        "Hannah Laing & Marlon Hoffstadt ft. Caroline Roxy - Stomp Your Feet",
        "Armin van Buuren & Hannah Laing & Wippenberg - U Got 2 Know",
    ),
    (
        "Armin van Buuren & Hannah Laing & Wippenberg - U Got 2 Know",
        "The Prodigy - No Good (Start The Dance) (Marlon Hoffstadt Rave Revival Edit)",
    ),
    (
        "The Prodigy - No Good (Start The Dance) (Marlon Hoffstadt Rave Revival Edit)",
        "Madonna - Frozen (LAWTON Lick)",
    ),
    ("Marlon Hoffstadt - Turn It Up", "Wippenberg & Johannes Wohlgeschaffen - On My Mind"),
    (
        "Wippenberg & Johannes Wohlgeschaffen - On My Mind",
        "Marlon Hoffstadt & KI/KI - Losing Control",
    ),
    ("Marlon Hoffstadt & KI/KI - Losing Control", "Armin van Buuren & Olive Anguz - Vem Comigo"),
    (
        "Armin van Buuren & Olive Anguz - Vem Comigo",
        "Organ Donors - 4 Tribes (Wanna Be Startin' Somethin')",
    ),
    (
        "Organ Donors - 4 Tribes (Wanna Be Startin' Somethin')",
        "Hi-Gate - Pitchin' (In Every Direction) (Shugz & Trance Wax Remix)",
    ),
    ("Marlon Hoffstadt - Breathe", "Hannah Laing & Evil Twiin - Hijack The System"),
    ("Hannah Laing & Evil Twiin - Hijack The System", "Prauze - Velizy 2019"),
    ("Prauze - Velizy 2019", "Edvvin & Linds - Freak The Funk"),
    ("Edvvin & Linds - Freak The Funk", "Fergie ft. will.i.am - Fergalicious (Kø:lab Rave Edit)"),
    (
        "Fergie ft. will.i.am - Fergalicious (Kø:lab Rave Edit)",
        "Mesto vs. Fallon - Caramelle vs. Diet Coke (Bassjackers TECH BOUNCE Edit)",
    ),
    (
        "Mesto vs. Fallon - Caramelle vs. Diet Coke (Bassjackers TECH BOUNCE Edit)",
        LOVE_PARADE,
    ),
    (LOVE_PARADE, "CTRL & Panteros666 - Fire II : Dragon Return"),
    ("CTRL & Panteros666 - Fire II : Dragon Return", "Ida Corr & 2HOT2PLAY - Think About It"),
    ("Ida Corr & 2HOT2PLAY - Think About It", "THOMM - Give It Hard"),
    ("THOMM - Give It Hard", "Bountyhunter - Woops (Dimitri Vegas & Junkie Kid Remix)"),
    ("Bountyhunter - Woops (Dimitri Vegas & Junkie Kid Remix)", "onTune - Flying Circus"),
    ("onTune - Flying Circus", "Question Mark - The Birds"),
    (
        "Question Mark - The Birds",
        "Armin van Buuren vs. Cosmic Gate vs. Susana - Space Case vs. Exploration Of Space vs. "
        "Shivers (Armin van Buuren Mashup)",
    ),
    (
        "Armin van Buuren vs. Cosmic Gate vs. Susana - Space Case vs. Exploration Of Space vs. "
        "Shivers (Armin van Buuren Mashup)",
        "U96 - Club Bizarre (Argot Edit)",
    ),
    ("U96 - Club Bizarre (Argot Edit)", "Marie Vaunt - Never Gonna Stop"),
    (
        "Marie Vaunt - Never Gonna Stop",
        "Dimitri Vegas & Like Mike & Marlon Hoffstadt & DJ Konik - Makina Time",
    ),
    (
        "Dimitri Vegas & Like Mike & Marlon Hoffstadt & DJ Konik - Makina Time",
        "Nicolas Julian & AENJAY - Hit The Floor",
    ),
    ("Nicolas Julian & AENJAY - Hit The Floor", "Mega 'Lo Mania - Love's Infinity"),
]
ARMIN_WITH = {
    "Mesto vs. Fallon - Caramelle vs. Diet Coke (Bassjackers TECH BOUNCE Edit)": {
        "Fallon - Diet Coke",
        "Mesto - Caramelle",
    },
    "Armin van Buuren vs. Cosmic Gate vs. Susana - Space Case vs. Exploration Of Space vs. "
    "Shivers (Armin van Buuren Mashup)": {
        "Cosmic Gate - Exploration Of Space",
        "Armin van Buuren ft. Susana - Shivers (Acappella)",
        "Armin van Buuren - Space Case",
    },
}


def name(track: explore.TrackRef) -> str:
    return f"{track.artist} - {track.title}"


@pytest.fixture(scope="module")
def crawled(make_database, shared_samples_dir: Path, tmp_path_factory) -> str:
    """The three pages, and Matroda's again as tracklist "l3uw499x" by "Other DJ", crawled with
    ``scrapy crawl`` from file:// into one database."""
    folder = shared_samples_dir / "tracklist"
    page = (folder / MATRODA).read_text(encoding="utf-8")
    copy = re.sub(r'(href="/dj/matroda/index.html"[^>]*>)Matroda<', r"\1Other DJ<", page)
    copy = copy.replace("/tracklist/l3uw499/", "/tracklist/l3uw499x/")
    assert copy.count("Other DJ") >= 1 and copy != page
    second = tmp_path_factory.mktemp("pages") / "matroda-again.html"
    second.write_text(copy, encoding="utf-8")
    url = make_database()
    pages = [folder / MATRODA, folder / DEADMAU5, folder / ARMIN, second]
    # DOWNLOAD_DELAY=0: files need no politeness, and the default 5 s between pages made this
    # fixture 25 s.
    done = scrapy_crawl(
        "-a", "start_urls=" + ",".join(path.as_uri() for path in pages),
        "-s", "DOWNLOAD_DELAY=0", database_url=url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return url


@pytest.fixture(scope="module")
def shared_samples_dir() -> Path:
    from tests.conftest import SHARED_SAMPLES

    if not SHARED_SAMPLES.is_dir():
        pytest.skip(f"real sample pages not found at {SHARED_SAMPLES}")
    return SHARED_SAMPLES


def test_the_explorer_gives_the_edges_read_on_the_pages(crawled: str) -> None:
    with explore.read_only(crawled) as connection:
        found = explore.top_transitions(connection, limit=explore.MAX_LIMIT)
        [matroda_set] = [
            s for s in explore.dj_detail(connection, "Matroda").sets if s.source_id == "l3uw499"
        ]
    edges = {(name(t.source), name(t.target)): (t.plays.sets, t.plays.djs) for t in found}
    expected = {edge: (2, 2) for edge in MATRODA_EDGES}
    expected |= {edge: (1, 1) for edge in DEADMAU5_EDGES}
    expected |= {edge: (1, 2) for edge in ARMIN_EDGES}
    assert edges == expected
    assert matroda_set.djs == ("Matroda",)


def test_w_rows_and_mashup_parts_are_played_with_their_row(crawled: str) -> None:
    expected = DEADMAU5_WITH | ARMIN_WITH
    expected["Odd Mob - LEFT TO RIGHT (Aidan Rudd Remix)"] = {
        "Round Table Knights & Bauchamp - Calypso"
    }
    with explore.read_only(crawled) as connection:
        for track, together in expected.items():
            [hit] = [
                h for h in explore.search_tracks(connection, track, 5) if name(h.track) == track
            ]
            found = explore.neighbourhood(connection, hit.track.id).with_tracks
            assert {name(n.track) for n in found} == together, track
