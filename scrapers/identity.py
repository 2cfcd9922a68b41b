"""The one place that decides when two spellings name the same thing.

Every writer (database pipeline, importer, enrichment, the migration's merge rules) goes through
these functions. Two normalisations that disagree is how duplicate tracks are born, so nothing
else in the project may lower-case, strip or compare identifiers on its own.

Migration 002's SQL mirrors ``normalize_isrc`` exactly (strip whitespace, hyphens and dots,
upper-case ASCII, validate); ``tests/test_migration_002.py`` checks the two agree.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import NamedTuple

from scrapers.statuses import CreditRole

ISRC_PATTERN = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$")
# TuneCore hands out "TC…" catalogue codes that look like ISRCs but are not.
_NOT_ISRC_PREFIXES = ("TC",)
_ISRC_SEPARATORS = re.compile(r"[\s\-.]")
_AMPERSAND = re.compile(r"\s*&\s*")

_SPOTIFY_ID = re.compile(r"^[0-9A-Za-z]{22}$")
_SPOTIFY_URI = re.compile(r"^spotify:track:([0-9A-Za-z]{22})$")
_SPOTIFY_URL = re.compile(
    r"^https?://open\.spotify\.com/(?:intl-[a-z]{2}(?:-[a-z]{2})?/|embed/)?track/"
    r"([0-9A-Za-z]{22})(?:[/?#].*)?$"
)

# "ft.", "ft", "feat.", "feat", "featuring", "with" inside brackets count as featured credits.
_FEAT_WORD = r"(?:ft\.?|feat\.?|featuring)"
_FEAT_IN_ARTIST = re.compile(rf"\s+{_FEAT_WORD}\s+", re.IGNORECASE)
_FEAT_IN_TITLE = re.compile(rf"[\(\[]\s*{_FEAT_WORD}\s+([^\)\]]+)[\)\]]", re.IGNORECASE)
_FEAT_TRAILING_TITLE = re.compile(rf"\s+{_FEAT_WORD}\s+(.+)$", re.IGNORECASE)
# Separators between credited artists. " vs. " joins mashup artists, who are primaries too.
# "&" and "and" are not separators: "Above & Beyond" and "Chase & Status" are one act each.
_ARTIST_SEPARATORS = re.compile(r"\s*(?:,|\s\bx\b\s|\bvs\.?\s|\s\+\s)\s*", re.IGNORECASE)
# In a featured list ("feat. B & C") "&" does separate people.
_FEATURED_SEPARATORS = re.compile(r"\s*(?:,|&|\sand\s|\s\bx\b\s|\s\+\s)\s*", re.IGNORECASE)
_REMIX_CREDIT = re.compile(
    r"[\(\[]([^\(\)\[\]]+?)\s+(?:remix|rework|re-?edit|edit|bootleg|flip|dub|mix|vip)[\)\]]",
    re.IGNORECASE,
)
# Words in a version bracket that do not name a remixer.
_NOT_REMIXERS = frozenset(
    {
        "extended",
        "original",
        "radio",
        "club",
        "live",
        "instrumental",
        "acapella",
        "dub",
        "short",
        "long",
        "album",
        "single",
        "vip",
        "special",
        "festival",
        "intro",
        "outro",
    }
)
# The original version named in brackets, "(Original Mix)", "[original]", "( Original Version )",
# or after a dash at the end, Spotify's way: "Strobe - Original Mix". Other version words name
# another recording and are not matched.
_ORIGINAL_WORDS = r"\s*original(?:\s+(?:mix|version))?\s*"
_ORIGINAL_VERSION = re.compile(
    rf"\s*(?:\({_ORIGINAL_WORDS}\)|\[{_ORIGINAL_WORDS}\]|\s-{_ORIGINAL_WORDS}$)", re.IGNORECASE
)
_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)
_APOSTROPHES = re.compile("['`\u00b4\u2018\u2019\u02bc]")
# ``fold_text`` for ASCII: apostrophes vanish, letters and digits stay, the rest (``_`` too)
# becomes a space, exactly what the two regular expressions do.
_ASCII_FOLD = str.maketrans(
    {
        chr(code): None if chr(code) in "'`" else chr(code) if chr(code).isalnum() else " "
        for code in range(128)
    }
)

UNKNOWN_TRACK_TEXT = "id"


class InvalidIdentifier(ValueError):
    """Raised by the ``parse_*`` functions; the message says what was wrong, for rejected_items."""


def normalize_isrc(raw: object) -> str | None:
    """The canonical 12-character ISRC, or None when ``raw`` is empty or not an ISRC."""
    try:
        return parse_isrc(raw)
    except InvalidIdentifier:
        return None


def parse_isrc(raw: object) -> str | None:
    """Like ``normalize_isrc`` but says why a non-empty value was refused."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidIdentifier(f"ISRC must be text, got {type(raw).__name__}")
    candidate = _ISRC_SEPARATORS.sub("", raw)
    if not candidate:
        return None
    # ASCII only: str.upper() would turn "ß" into "SS" and "ı" into "I" and accept them.
    candidate = candidate.upper() if candidate.isascii() else candidate
    if not ISRC_PATTERN.match(candidate):
        raise InvalidIdentifier(f"not an ISRC: {raw[:40]!r}")
    if candidate.startswith(_NOT_ISRC_PREFIXES):
        raise InvalidIdentifier(f"TuneCore code, not an ISRC: {raw[:40]!r}")
    return candidate


def normalize_spotify_id(raw: object) -> str | None:
    """The bare 22-character Spotify track id, or None when ``raw`` is empty or invalid."""
    try:
        return parse_spotify_id(raw)
    except InvalidIdentifier:
        return None


def parse_spotify_id(raw: object) -> str | None:
    """Accepts a bare id, a ``spotify:track:`` URI or an open.spotify.com track URL."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidIdentifier(f"Spotify ID must be text, got {type(raw).__name__}")
    candidate = raw.strip()
    if not candidate:
        return None
    if _SPOTIFY_ID.match(candidate):
        return candidate
    for pattern in (_SPOTIFY_URI, _SPOTIFY_URL):
        match = pattern.match(candidate)
        if match:
            return match.group(1)
    raise InvalidIdentifier(f"not a Spotify track id: {raw[:60]!r}")


@functools.lru_cache(maxsize=1 << 16)
def fold_text(text: str) -> str:
    """Case-, accent-, punctuation- and whitespace-insensitive form of a name or title."""
    # Cached: artist names repeat on nearly every line of a crawl or an import.
    if text.isascii():
        # NFKD changes no ASCII text and leaves no marks to drop, and one table does the
        # apostrophe and punctuation passes below: same result, a fraction of the cost.
        return " ".join(text.lower().translate(_ASCII_FOLD).split())
    decomposed = unicodedata.normalize("NFKD", text)
    without_marks = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    # Apostrophes join a word ("Love's" = "Loves"); other punctuation separates words.
    joined = _APOSTROPHES.sub("", without_marks.casefold())
    words = _NON_WORD.sub(" ", joined).replace("_", " ")
    return " ".join(words.split())


def artist_key(name: str) -> str:
    """Key of the ``artists`` table: one row per folded name."""
    return fold_text(name)


def split_artist_credit(artist: str) -> list[tuple[str, str]]:
    """``"A & B ft. C, D"`` -> ``[("A", "primary"), ("B", "primary"), ("C", "featured"), ...]``."""
    return list(_split_artist_credit(artist))


@functools.lru_cache(maxsize=1 << 14)
def _split_artist_credit(artist: str) -> tuple[tuple[str, str], ...]:
    main, *featured = _FEAT_IN_ARTIST.split(artist, maxsplit=1)
    credits = [(name, CreditRole.PRIMARY) for name in _split_names(main)]
    if featured:
        credits += [
            (name, CreditRole.FEATURED) for name in _split_names(featured[0], _FEATURED_SEPARATORS)
        ]
    return tuple(_unique_credits(credits))


def featured_from_title(title: str) -> list[str]:
    """Featured artists named in a title: ``"Song (feat. X & Y)"`` -> ``["X", "Y"]``."""
    names: list[str] = []
    for group in _FEAT_IN_TITLE.findall(title):
        names += _split_names(group, _FEATURED_SEPARATORS)
    trailing = _FEAT_TRAILING_TITLE.search(_FEAT_IN_TITLE.sub("", title))
    if trailing:
        names += _split_names(trailing.group(1), _FEATURED_SEPARATORS)
    return names


def remixers_from_title(title: str) -> list[str]:
    """Remixers credited in a version bracket: ``"Song (X & Y Remix)"`` -> ``["X", "Y"]``."""
    names: list[str] = []
    for group in _REMIX_CREDIT.findall(title):
        for name in _split_names(group):
            folded = fold_text(name)
            if folded not in _NOT_REMIXERS and not folded.isdigit():
                names.append(name)
    return names


class LineIdentity(NamedTuple):
    """Everything identity derives from one raw (artist, title) line, computed once."""

    title_key: str
    normalized_title: str
    credits: tuple[tuple[str, str], ...]


@functools.lru_cache(maxsize=1 << 16)
def line_identity(artist: str, title: str) -> LineIdentity:
    """Title key, normalised title and credits of a line.

    Cached and immutable: crawls and imports repeat the same lines constantly, and deriving the
    keys costs several regular-expression passes. The bound keeps memory flat on huge imports.
    """
    # Every featured-credit pattern needs an "f" ("ft", "feat", "featuring"; no other character
    # matches "f" case-insensitively) and every remix credit a bracket: most lines have neither.
    if "f" in title or "F" in title:
        featured = featured_from_title(title)
        bare_title = _FEAT_TRAILING_TITLE.sub("", _FEAT_IN_TITLE.sub("", title))
    else:
        featured, bare_title = [], title
    remixers = remixers_from_title(title) if "(" in title or "[" in title else []
    primary = _split_artist_credit(artist)
    names = {artist_key(name) for name, _ in primary}
    if featured or remixers:
        credits = [*primary, *((name, CreditRole.FEATURED) for name in featured)]
        credits += [(name, CreditRole.REMIXER) for name in remixers]
        names |= {artist_key(name) for name in featured}
        unique = tuple(_unique_credits(credits))
    else:
        unique = primary  # already unique, keys not empty
    folded_title = fold_text(bare_title)
    # Folded text holds only word characters and spaces, so "|" and "::" cannot be ambiguous.
    key = f"{'|'.join(sorted(n for n in names if n))}::{folded_title}"
    return LineIdentity(key, folded_title, unique)


def credits_for(artist: str, title: str) -> list[tuple[str, str]]:
    """Every credited artist of a line, with roles primary / featured / remixer."""
    return list(line_identity(artist, title).credits)


def title_key(artist: str, title: str) -> str:
    """Key of the title tier: same key means same recording.

    Keeps what makes a different recording (remix, edit, version words stay in the title part)
    and ignores what does not: case, accents, punctuation, whitespace, how "feat." is written,
    where the featured credit sits (artist or title) and the order of credited artists.
    """
    return line_identity(artist, title).title_key


def normalized_title(title: str) -> str:
    """Value of ``tracks.normalized_title``: the folded title, featured credits removed."""
    return fold_text(_FEAT_TRAILING_TITLE.sub("", _FEAT_IN_TITLE.sub("", title)))


def comparable_title(title: str) -> str:
    """The title without a bracket naming the original version, for comparing with a source.

    Tracklists and Beatport write "Strobe (Original Mix)" where MusicBrainz writes "Strobe" and
    Spotify "Strobe - Original Mix": the same recording. Only matching and search queries use
    this; ``title_key`` and ``normalized_title`` keep the words, since stored keys depend on
    them. "Extended Mix", "Radio Edit", remixes and the like name other recordings and stay.
    """
    if "original" not in title.lower():
        return title
    # A title that is nothing but the bracket keeps it: an empty title matches nothing.
    return _ORIGINAL_VERSION.sub("", title).strip() or title


def search_title(title: str) -> str:
    """The title to search a source for: no featured credit, no bracket naming the original.

    Sources file "(feat. X)" in the artist credit, not the title, so a phrase search with it
    finds nothing.
    """
    bare = " ".join(_FEAT_TRAILING_TITLE.sub("", _FEAT_IN_TITLE.sub("", title)).split())
    return comparable_title(bare or title)


def search_artists(artist: str) -> list[str]:
    """The primary artists to search a source for, "A & B" split into "A" and "B".

    The phrase "A & B" misses a recording credited "B & A" or "A and B"; each name searched
    on its own finds it, and finds "Above & Beyond" too, whose credit holds both words.
    """
    names = [
        part.strip()
        for name, role in split_artist_credit(artist)
        if role == CreditRole.PRIMARY
        for part in _AMPERSAND.split(name)
        if part.strip()
    ]
    return names or [artist]


def credited_names(artist: str, title: str = "") -> tuple[frozenset[str], frozenset[str]]:
    """Folded primary and featured names of a credit (and of a title's "(feat. X)").

    "&" splits here: whether "A & B" is one act or two, both sides split it the same way.
    """
    primary: set[str] = set()
    featured: set[str] = {artist_key(name) for name in featured_from_title(title)}
    for name, role in split_artist_credit(artist):
        keys = {artist_key(part) for part in _AMPERSAND.split(name)} - {""}
        (primary if role == CreditRole.PRIMARY else featured).update(keys)
    return frozenset(primary), frozenset(featured - primary)


# Words that make a title name another recording, with another ISRC: a live take, an edit, a
# remix, a mix made for a purpose. "Original Mix", "Album Version", "Mix" and "Version" alone
# name no other version, so "Strobe (Original Mix)" and "Strobe" carry the same (empty) set.
VERSION_WORDS = frozenset(
    {
        "live",
        "edit",
        "remix",
        "extended",
        "radio",
        "dub",
        "vip",
        "instrumental",
        "acoustic",
        "acapella",
        "demo",
        "rework",
        "bootleg",
        "flip",
        "unplugged",
        "reprise",
        "single",
        "club",
        "video",
        "mashup",
        "intro",
        "stripped",
        "orchestral",
        "karaoke",
    }
)
_VERSION_FILLERS = frozenset({"mix", "version", "original", "album"})
_VERSION_SYNONYMS = {"rmx": "remix", "acappella": "acapella", "remixed": "remix", "edited": "edit"}
_BRACKETED = re.compile(r"[\(\[]([^\(\)\[\]]*)[\)\]]")
# Spotify and Deezer append the version after a dash: "Strobe - Radio Edit".
_DASHED_VERSION = re.compile(r"\s[-\u2013\u2014]\s+(.+)$")


def split_version(title: str) -> tuple[str, frozenset[str]]:
    """A title's folded words less its version words, and its version words.

    Version words count only in brackets or after a final " - ": "Live Forever" and "Dub Be
    Good to Me" are titles, "(Live)" and "- Radio Edit" are versions. The rest of a version
    part stays with the title ("(Four Tet Remix)" keeps "four tet"), the words that name no
    version go ("(Original Mix)", "(Album Version)"), and featured credits are no part of it.
    """
    bare = _FEAT_TRAILING_TITLE.sub("", _FEAT_IN_TITLE.sub("", title))
    parts = _BRACKETED.findall(bare)
    base = _BRACKETED.sub(" ", bare)
    tail = _DASHED_VERSION.search(base)
    if tail:
        parts.append(tail.group(1))
        base = base[: tail.start()]
    words = [_VERSION_SYNONYMS.get(word, word) for word in fold_text(" ".join(parts)).split()]
    rest = [word for word in words if word not in VERSION_WORDS and word not in _VERSION_FILLERS]
    core = " ".join([fold_text(base), *rest]).strip()
    return core, frozenset(word for word in words if word in VERSION_WORDS)


def title_family(title: str) -> str:
    """What every version of a title shares: ``split_version``'s core less the remixers credited.

    "Glue", "Glue (Extended Mix)", "Glue - Radio Edit" and "Glue (Four Tet Remix)" are one family,
    "glue": the explorer lists a track's other versions by it (with a shared primary artist).
    """
    core, _ = split_version(title)
    words = core.split()
    for remixer in remixers_from_title(title):
        name = fold_text(remixer).split()
        for start in range(len(words) - len(name), -1, -1):
            if name and words[start : start + len(name)] == name:
                del words[start : start + len(name)]
                break
    return " ".join(words) or core


def described_version(text: str) -> frozenset[str]:
    """The version words anywhere in a description, e.g. MusicBrainz's ``disambiguation``.

    "live, 1997-12-19: Hammerstein Ballroom" -> {"live"}; "UK single version" -> {"single"};
    "album original mix" and "explicit" name no version.
    """
    words = (_VERSION_SYNONYMS.get(word, word) for word in fold_text(text).split())
    return frozenset(word for word in words if word in VERSION_WORDS)


# First two letters of an ISRC: the ISO 3166-1 alpha-2 code of the agency that allocated the
# registrant code, or a code the ISRC agencies assigned themselves: ZZ (the International ISRC
# Agency, IFPI bulletin 2007/01), QM, QT and QZ (the US agency, beside US), CP and DG (reserved
# by the International ISRC Agency). Any other pair is a typo ("CB" for "GB"), and an ISRC with
# a typo names nothing: it must not be stored.
ISRC_COUNTRY_CODES = frozenset(
    re.findall(
        r"[A-Z]{2}",
        """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
    BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ
    EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW
    GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY
    KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV
    MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY
    QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG
    TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM
    ZW
    QM QT QZ ZZ CP DG
    """,
    )
)


def isrc_country_assigned(isrc: str) -> bool:
    """True when a (valid, normalised) ISRC starts with a country code an agency can hold."""
    return isrc[:2] in ISRC_COUNTRY_CODES


def is_unknown_text(text: str | None) -> bool:
    """True for the site's placeholder "ID" (an unidentified artist or title)."""
    return text is None or fold_text(text) == UNKNOWN_TRACK_TEXT


def _split_names(text: str, separators: re.Pattern[str] = _ARTIST_SEPARATORS) -> list[str]:
    return [name.strip() for name in separators.split(text or "") if name.strip()]


def _unique_credits(credits: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for name, role in credits:
        key = (artist_key(name), role)
        if key[0] and key not in seen:
            seen.add(key)
            unique.append((name, role))
    return unique
