"""scrapers.identity: identifiers and the artist + title key, on made-up and real spellings."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest

from scrapers import identity

SPOTIFY = "4uLU6hMCjMI75M1A2tKUQC"


@pytest.mark.parametrize(
    "raw",
    ["USRC12345678", "us-rc1-23-45678", "US RC1 23 45678", "US.RC1.23.45678", " usrc12345678 "],
)
def test_isrc_spellings_normalise_to_one_code(raw: str) -> None:
    assert identity.normalize_isrc(raw) == "USRC12345678"


@pytest.mark.parametrize(
    "raw",
    [
        "USRC1234567",
        "USRC123456789",
        "1SRC12345678",
        "USRC1234567X",
        "TC-ABC-12-34567",
        # Non-ASCII letters that str.upper() turns into ASCII ones are not ISRC characters.
        "ıSRC12345678",
        "UßC12345678",
        "ﬁRC112345678",
    ],
)
def test_invalid_isrcs_are_refused_with_a_reason(raw: str) -> None:
    assert identity.normalize_isrc(raw) is None
    with pytest.raises(identity.InvalidIdentifier):
        identity.parse_isrc(raw)


def test_empty_and_wrongly_typed_isrcs() -> None:
    assert identity.parse_isrc(None) is None
    assert identity.parse_isrc(" - ") is None
    with pytest.raises(identity.InvalidIdentifier, match="must be text"):
        identity.parse_isrc(12345678)


@pytest.mark.parametrize(
    "raw",
    [
        SPOTIFY,
        f"spotify:track:{SPOTIFY}",
        f"https://open.spotify.com/track/{SPOTIFY}",
        f"https://open.spotify.com/track/{SPOTIFY}?si=1a2b3c",
        f"https://open.spotify.com/intl-de/track/{SPOTIFY}",
        f"  {SPOTIFY}  ",
    ],
)
def test_spotify_id_forms(raw: str) -> None:
    assert identity.parse_spotify_id(raw) == SPOTIFY


@pytest.mark.parametrize(
    "raw",
    [
        "spotify_new",
        f"spotify:album:{SPOTIFY}",
        f"https://open.spotify.com/album/{SPOTIFY}",
        f"https://example.com/track/{SPOTIFY}",
        SPOTIFY[:-1],
    ],
)
def test_not_spotify_track_ids(raw: str) -> None:
    assert identity.normalize_spotify_id(raw) is None


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("Armin van Buuren", "Blah Blah Blah"), ("ARMIN VAN BUUREN", "blah  blah blah")),
        (("Sven Väth", "Ritual Of Life"), ("Sven Vath", "Ritual of Life")),
        (("Âme", "Asa"), ("Ame", "asa")),
        (
            ("deadmau5 ft. Lights", "When The Summer Dies"),
            ("deadmau5 feat. Lights", "When the Summer Dies"),
        ),
        (("A ft. B", "Song"), ("A", "Song (feat. B)")),
        (("A ft. B & C", "Song"), ("A featuring C and B", "Song")),
        (("Mega 'Lo Mania", "Love's Infinity"), ("Mega Lo Mania", "Love\u2019s Infinity")),
        (("Cloonee", "Sippin' Yak"), ("Cloonee", "Sippin Yak")),
    ],
)
def test_title_key_ignores_what_does_not_make_another_recording(one, other) -> None:
    assert identity.title_key(*one) == identity.title_key(*other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("Robbie Williams", "Angels (Extended Mix)"), ("Robbie Williams", "Angels (Radio Edit)")),
        (("Robbie Williams", "Angels"), ("Robbie Williams", "Angels (Tiësto Remix)")),
        (("Cloonee", "Sippin' Yak (JSTJR Remix)"), ("Cloonee", "Sippin' Yak (Other Remix)")),
        (("Bicep", "Apricots (Live Edit)"), ("Bicep", "Apricots")),
        (("deadmau5", "Ghosts 'n' Stuff"), ("deadmau5", "Moar Ghosts 'n' Stuff")),
        (("Artist One", "Song"), ("Artist Two", "Song")),
    ],
)
def test_title_key_keeps_what_makes_another_recording(one, other) -> None:
    assert identity.title_key(*one) != identity.title_key(*other)


@pytest.mark.parametrize(
    ("title", "comparable"),
    [
        ("Strobe (Original Mix)", "Strobe"),
        ("Strobe [original mix]", "Strobe"),
        ("Strobe (Original)", "Strobe"),
        ("Strobe (Original Version)", "Strobe"),
        ("Strobe ( ORIGINAL   Mix )", "Strobe"),
        ("Strobe\u00a0(Original\u00a0Mix)", "Strobe"),
        ("Angels (Original Mix) (feat. X)", "Angels (feat. X)"),
        ("Angels (feat. X) [Original Mix]", "Angels (feat. X)"),
        # Everything else names another recording, or is part of the name, and stays.
        ("Strobe (Extended Mix)", "Strobe (Extended Mix)"),
        ("Strobe (Radio Edit)", "Strobe (Radio Edit)"),
        ("Strobe (Original Dub)", "Strobe (Original Dub)"),
        ("Strobe (Original Mix Edit)", "Strobe (Original Mix Edit)"),
        ("Strobe (Unoriginal Mix)", "Strobe (Unoriginal Mix)"),
        ("Original Sin", "Original Sin"),
        ("Original Sin (Original Mix)", "Original Sin"),
        ("Strobe - Original Mix", "Strobe"),
        ("Strobe - original", "Strobe"),
        ("Strobe - Original Mix Edit", "Strobe - Original Mix Edit"),
        ("Levels - Radio Edit", "Levels - Radio Edit"),
        # A title that is only the bracket keeps it: nothing would be left to compare.
        ("(Original Mix)", "(Original Mix)"),
    ],
)
def test_comparable_title_drops_only_the_original_version_bracket(
    title: str, comparable: str
) -> None:
    assert identity.comparable_title(title) == comparable


def test_comparable_title_leaves_the_stored_keys_alone() -> None:
    """``title_key`` and ``normalized_title`` are stored: they keep "Original Mix"."""
    assert identity.normalized_title("Strobe (Original Mix)") == "strobe original mix"
    assert identity.title_key("deadmau5", "Strobe (Original Mix)") == (
        "deadmau5::strobe original mix"
    )


def test_fold_text_shortcut_for_ascii_agrees_with_the_full_folding() -> None:
    def reference(text: str) -> str:
        decomposed = unicodedata.normalize("NFKD", text)
        bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
        joined = re.sub("['`\u00b4\u2018\u2019\u02bc]", "", bare.casefold())
        words = re.sub(r"[^\w]+", " ", joined).replace("_", " ")
        return re.sub(r"\s+", " ", words).strip()

    for text in [
        "  Don't_Stop-Me\tNow!! ",
        "Don\u2019t",
        "A&B",
        "DJ   Snake",
        "x__y",
        "Ölé",
        "ﬁnal",
        "ＡＢＣ",
    ]:
        assert identity.fold_text(text) == reference(text)


def test_cached_credit_split_is_not_shared_between_callers() -> None:
    first = identity.split_artist_credit("Cached Artist ft. Guest")
    first.append(("Intruder", "primary"))
    assert identity.split_artist_credit("Cached Artist ft. Guest") == [
        ("Cached Artist", "primary"),
        ("Guest", "featured"),
    ]


def test_credits_and_roles() -> None:
    assert identity.credits_for("JOYRYDE ft. Freddie Gibbs", "Damn (Don Dirty Remix)") == [
        ("JOYRYDE", "primary"),
        ("Freddie Gibbs", "featured"),
        ("Don Dirty", "remixer"),
    ]
    assert identity.split_artist_credit("Remon Verhoeve X URI") == [
        ("Remon Verhoeve", "primary"),
        ("URI", "primary"),
    ]
    assert identity.remixers_from_title("Angels (Extended Mix)") == []


@pytest.mark.parametrize(
    ("artist", "title", "credits", "key"),
    [
        ("Solo, Duo, Solo", "Song", [("Solo", "primary"), ("Duo", "primary")], "duo|solo::song"),
        ("Solo ft. ", "Song", [("Solo", "primary")], "solo::song"),
        (
            "Solo ft. Guest, Solo",
            "Song",
            [("Solo", "primary"), ("Guest", "featured"), ("Solo", "featured")],
            "guest|solo::song",
        ),
        ("Solo", "Song (feat. Solo)", [("Solo", "primary"), ("Solo", "featured")], "solo::song"),
        ("Solo", "Song (Solo Remix)", [("Solo", "primary"), ("Solo", "remixer")], None),
    ],
)
def test_line_credits_are_unique_per_name_and_role(
    artist: str, title: str, credits: list[tuple[str, str]], key: str | None
) -> None:
    assert identity.credits_for(artist, title) == credits
    assert key is None or identity.title_key(artist, title) == key


# --- Real spellings from saved pages (../shared/samples), as listed in their .json sidecars ---

_LINE = re.compile(r"^(?:\d+|w/) \| (?:\[[\d:]+\] )?(?P<line>.+?)(?: \[[^\]]+\])?$")


def sample_lines(samples: Path) -> list[str]:
    lines = []
    for sidecar in sorted((samples / "tracklist").glob("*.json")):
        facts = json.loads(sidecar.read_text(encoding="utf-8"))
        for shown in facts.get("first_5_visible_tracks", []) + facts.get(
            "last_3_visible_tracks", []
        ):
            match = _LINE.match(shown)
            if match:
                lines.append(match.group("line"))
    return lines


def test_real_spellings_keep_their_key_under_harmless_rewrites(shared_samples: Path) -> None:
    lines = [line for line in sample_lines(shared_samples) if " - " in line]
    assert len(lines) >= 30
    keys = set()
    for line in lines:
        artist, title = line.split(" - ", 1)
        if identity.is_unknown_text(title):
            continue
        key = identity.title_key(artist, title)
        rewritten = (
            artist.upper().replace(" ft. ", " Feat. ").replace("&", " & "),
            f"  {title.lower()}  ",
        )
        assert identity.title_key(*rewritten) == key, line
        keys.add(key)
    # Different lines of real sets never collapse into one key.
    assert len(keys) == len({line for line in lines if not line.endswith(" - ID")})


def test_real_unknown_rows_and_remixes(shared_samples: Path) -> None:
    lines = sample_lines(shared_samples)
    unknown = [line for line in lines if line == "ID - ID"]
    assert unknown and all(identity.is_unknown_text(line.split(" - ")[1]) for line in unknown)
    remixes = [line for line in lines if line.endswith(" Remix)")]
    assert remixes
    for line in remixes:
        artist, title = line.split(" - ", 1)
        original = title[: title.rindex(" (")]
        assert identity.title_key(artist, title) != identity.title_key(artist, original), line
        assert any(role == "remixer" for _, role in identity.credits_for(artist, title)), line


def test_cached_line_gives_each_spelling_its_own_keys() -> None:
    identity.line_identity.cache_clear()
    assert identity.title_key("Cache Artist", "Cache Song") == "cache artist::cache song"
    # Another spelling of the same recording after the first one is cached: same key...
    assert identity.title_key("CACHE ARTIST", "cache song (feat. Guest)") == (
        "cache artist|guest::cache song"
    )
    assert identity.title_key("Cache Artist ft. Guest", "Cache Song") == (
        "cache artist|guest::cache song"
    )
    # ...and a different recording keeps its own, whatever was cached before.
    assert identity.title_key("Cache Artist", "Cache Song (Other Remix)") == (
        "cache artist::cache song other remix"
    )
    assert identity.credits_for("Cache Artist", "Cache Song (Other Remix)") == [
        ("Cache Artist", "primary"),
        ("Other", "remixer"),
    ]
    assert identity.line_identity.cache_info().hits >= 1


def test_cached_credits_are_not_shared_between_callers() -> None:
    first = identity.credits_for("Shared Artist", "Shared (feat. Guest)")
    first.append(("Intruder", "primary"))
    assert identity.credits_for("Shared Artist", "Shared (feat. Guest)") == [
        ("Shared Artist", "primary"),
        ("Guest", "featured"),
    ]


def test_line_cache_is_bounded() -> None:
    maxsize = identity.line_identity.cache_info().maxsize
    assert maxsize is not None
    for n in range(maxsize + 100):
        identity.line_identity("Bound", f"Line {n}")
    assert identity.line_identity.cache_info().currsize == maxsize


@pytest.mark.parametrize("code", range(128))
def test_ascii_folding_table_agrees_with_the_regular_expressions(code: int) -> None:
    text = f"Ab{chr(code)}Cd {chr(code)}9"
    joined = re.sub("['`]", "", text.casefold())
    words = re.sub(r"[^\w]+", " ", joined).replace("_", " ")
    assert identity.fold_text(text) == " ".join(words.split())


# Version words (issue 15, item 3): a version on one side only names another recording.


@pytest.mark.parametrize(
    ("title", "core", "version"),
    [
        ("Strobe", "strobe", set()),
        ("Strobe (Original Mix)", "strobe", set()),
        ("Strobe - Original Mix", "strobe", set()),
        ("Strobe (Album Version)", "strobe", set()),
        ("Last Ferry (Live Edit)", "last ferry", {"live", "edit"}),
        ("Strobe - Radio Edit", "strobe", {"radio", "edit"}),
        ("Strobe [Extended Mix]", "strobe", {"extended"}),
        ("Strobe (Extended Version)", "strobe", {"extended"}),
        ("Opus (Four Tet Remix)", "opus four tet", {"remix"}),
        ("Opus (Four Tet RMX)", "opus four tet", {"remix"}),
        ("Song (VIP)", "song", {"vip"}),
        ("Song (Dub)", "song", {"dub"}),
        ("Song (Instrumental)", "song", {"instrumental"}),
        ("Song (Acoustic)", "song", {"acoustic"}),
        # Words in the title itself are the title, not a version.
        ("Live Forever", "live forever", set()),
        ("Dub Be Good to Me", "dub be good to me", set()),
        # A featured credit in brackets is no version, whatever the guest is called.
        ("Song (feat. Radio Man)", "song", set()),
        ("Song (feat. X) (Live)", "song", {"live"}),
    ],
)
def test_split_version(title: str, core: str, version: set[str]) -> None:
    assert identity.split_version(title) == (core, frozenset(version))


@pytest.mark.parametrize(
    ("description", "version"),
    [
        ("live, 1997-12-19: Hammerstein Ballroom, New York City, NY, USA", {"live"}),
        ("UK single version", {"single"}),
        ("official music video", {"video"}),
        ("20th anniversary remix", {"remix"}),
        ("album original mix", set()),
        ("explicit", set()),
        ("", set()),
    ],
)
def test_described_version(description: str, version: set[str]) -> None:
    assert identity.described_version(description) == frozenset(version)


@pytest.mark.parametrize(
    ("isrc", "assigned"),
    [
        ("GBAYE9700325", True),
        ("USWB10302417", True),
        ("FR89R1500001", True),
        ("QMDA61300150", True),  # the US agency's own code
        ("QZES71800001", True),
        ("ZZA012300001", True),  # the International ISRC Agency's
        ("CBAHT1200073", False),  # a typo of GB
        ("UKAAA0000001", False),
        ("XXAAA0000001", False),
    ],
)
def test_isrc_country_assigned(isrc: str, assigned: bool) -> None:
    assert identity.isrc_country_assigned(isrc) is assigned


@pytest.mark.parametrize(
    ("artist", "names"),
    [
        ("Deadmau5", ["Deadmau5"]),
        ("Queen & David Bowie", ["Queen", "David Bowie"]),
        ("Above & Beyond", ["Above", "Beyond"]),
        ("Kanye West ft. The Game", ["Kanye West"]),
        ("A, B feat. C", ["A", "B"]),
    ],
)
def test_search_artists_are_the_primaries_with_ampersands_split(
    artist: str, names: list[str]
) -> None:
    assert identity.search_artists(artist) == names


@pytest.mark.parametrize(
    ("title", "searched"),
    [
        ("Crack Music", "Crack Music"),
        ("Crack Music (feat. The Game)", "Crack Music"),
        ("Crack Music ft. The Game", "Crack Music"),
        ("Strobe (Original Mix)", "Strobe"),
        ("Song (feat. X) (Extended Mix)", "Song (Extended Mix)"),
    ],
)
def test_search_title_drops_featured_credits_and_the_original_bracket(
    title: str, searched: str
) -> None:
    assert identity.search_title(title) == searched


@pytest.mark.parametrize(
    ("artist", "title", "primary", "featured"),
    [
        ("Kanye West ft. The Game", "Crack Music", {"kanye west"}, {"the game"}),
        ("Avicii", "Levels (feat. Etta & Simon)", {"avicii"}, {"etta", "simon"}),
        ("Queen & David Bowie", "Under Pressure", {"queen", "david bowie"}, set()),
        ("Kanye West feat. The Game", "Crack Music (feat. The Game)", {"kanye west"}, {"the game"}),
    ],
)
def test_credited_names(artist: str, title: str, primary: set[str], featured: set[str]) -> None:
    assert identity.credited_names(artist, title) == (frozenset(primary), frozenset(featured))


@pytest.mark.parametrize(
    ("title", "family"),
    [
        ("Glue", "glue"),
        ("Glue (Extended Mix)", "glue"),
        ("Glue - Radio Edit", "glue"),
        ("Glue (Four Tet Remix)", "glue"),
        ("Glue [Bicep & Hammer Remix]", "glue"),
        ("Glue (feat. Someone)", "glue"),
        ("Glue (Live)", "glue"),
        ("Glue Factory", "glue factory"),  # another title, not a version
        ("Four Tet (Four Tet Remix)", "four tet"),  # a title that is the remixer's name stays
        ("Live Forever", "live forever"),  # version words outside brackets are the title
    ],
)
def test_title_family(title: str, family: str) -> None:
    assert identity.title_family(title) == family
