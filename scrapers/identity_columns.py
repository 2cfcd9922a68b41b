"""The columnar fast path of ``scrapers.identity``: the same keys, for a column of lines at once.

``identity`` is the rule; this module only evaluates it faster, with polars' vectorised string
kernels, for lines whose fields are *printable ASCII* (space to ``~``). In that domain the two are
exactly equivalent, which ``tests/test_identity_columns.py`` checks against ``identity`` itself
(the bench file, a seeded fuzz corpus, the real spellings of ``../shared/samples``):

* the regular expressions are ``identity``'s own compiled patterns, handed to polars' engine
  (Rust's ``regex``, leftmost-first like Python's ``re``, so ``findall``/``sub``/``split`` pick
  the same matches); their ``\\s`` and ``\\b`` see only spaces and ASCII word characters here;
* folding is ``identity._ASCII_FOLD``, the table ``fold_text`` uses for ASCII text, turned into
  two character classes.

Outside that domain they are not equivalent (``casefold`` against ``lower``: final sigma, ß;
combining marks missing from Python's ``\\w``; U+034F; ``\\x1c``-``\\x1f`` counting as ``\\s`` in
Python; a non-ASCII "ISRC" upper-cased into a valid one), so callers send every other line to
``identity`` (``printable_ascii`` says which).
"""

from __future__ import annotations

import re

import polars as pl

from scrapers import identity
from scrapers.statuses import CreditRole

# The domain where this module equals ``identity``; every other line takes the Python path.
PRINTABLE_ASCII = r"^[ -~]*$"
# Splits names: a character no printable-ASCII text holds.
_SEPARATOR = "\x1f"
# ``_ASCII_FOLD`` as two character classes: what it deletes, and what it keeps.
_DELETED = "".join(chr(code) for code, to in identity._ASCII_FOLD.items() if to is None)
_KEPT = "".join(
    chr(code) for code, to in identity._ASCII_FOLD.items() if to == chr(code) and to != " "
)


def engine_pattern(pattern: re.Pattern[str]) -> str:
    """``pattern`` for polars: the same source, its IGNORECASE flag inline."""
    return ("(?i)" if pattern.flags & re.IGNORECASE else "") + pattern.pattern


def _class(characters: str) -> str:
    return "".join(re.escape(character) for character in characters)


_FOLD_DELETE = f"[{_class(_DELETED)}]"
_FOLD_SPACE = f"[^{_class(_KEPT)}]+"
_FEAT_IN_ARTIST = engine_pattern(identity._FEAT_IN_ARTIST)
_FEAT_IN_TITLE = engine_pattern(identity._FEAT_IN_TITLE)
_FEAT_TRAILING_TITLE = engine_pattern(identity._FEAT_TRAILING_TITLE)
_ARTIST_SEPARATORS = engine_pattern(identity._ARTIST_SEPARATORS)
_FEATURED_SEPARATORS = engine_pattern(identity._FEATURED_SEPARATORS)
_REMIX_CREDIT = engine_pattern(identity._REMIX_CREDIT)
_ISRC_SEPARATORS = engine_pattern(identity._ISRC_SEPARATORS)
_ISRC = engine_pattern(identity.ISRC_PATTERN)
_SPOTIFY_FORMS = tuple(
    engine_pattern(pattern) for pattern in (identity._SPOTIFY_URI, identity._SPOTIFY_URL)
)
_SPOTIFY_ID = engine_pattern(identity._SPOTIFY_ID)

# Where each name of a line comes from, in ``line_identity``'s order of credits.
_PRIMARY, _FEATURED_IN_ARTIST, _FEATURED_IN_TITLE, _FEATURED_TRAILING, _REMIXER = range(5)
_ROLE_OF_PART = {
    _PRIMARY: CreditRole.PRIMARY.value,
    _FEATURED_IN_ARTIST: CreditRole.FEATURED.value,
    _FEATURED_IN_TITLE: CreditRole.FEATURED.value,
    _FEATURED_TRAILING: CreditRole.FEATURED.value,
    _REMIXER: CreditRole.REMIXER.value,
}


def printable_ascii(text: pl.Expr) -> pl.Expr:
    """True where ``text`` lies in this module's domain (a null is in it: no text)."""
    return text.str.contains(PRINTABLE_ASCII).fill_null(True)


def fold(text: pl.Expr) -> pl.Expr:
    """``identity.fold_text`` of printable-ASCII text."""
    return (
        text.str.to_lowercase()
        .str.replace_all(_FOLD_DELETE, "")
        .str.replace_all(_FOLD_SPACE, " ")
        .str.strip_chars(" ")
    )


def isrc(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """``identity.parse_isrc`` of a column: (the ISRC or null, whether the value was refused)."""
    candidate = raw.str.replace_all(_ISRC_SEPARATORS, "").str.to_uppercase()
    valid = candidate.str.contains(_ISRC) & ~candidate.str.starts_with("TC")
    refused = raw.is_not_null() & (candidate != "") & ~valid
    return pl.when(valid).then(candidate), refused.fill_null(False)


def spotify_id(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """``identity.parse_spotify_id`` of a column: (the bare id or null, whether refused)."""
    candidate = raw.str.strip_chars(" ")
    found = pl.when(candidate.str.contains(_SPOTIFY_ID)).then(candidate)
    for form in _SPOTIFY_FORMS:
        found = found.when(candidate.str.contains(form)).then(candidate.str.extract(form, 1))
    value = found.otherwise(None)
    refused = raw.is_not_null() & (candidate != "") & value.is_null()
    return value, refused.fill_null(False)


def _names(text: pl.Expr, separators: str) -> pl.Expr:
    """``identity._split_names``: the stripped, non-empty names between separators."""
    stripped = pl.element().str.strip_chars(" ")
    return (
        text.fill_null("")
        .str.replace_all(separators, _SEPARATOR)
        .str.split(_SEPARATOR)
        .list.eval(stripped.filter(stripped != ""))
    )


def _groups(text: pl.Expr, pattern: str) -> pl.Expr:
    """Group 1 of every match of ``pattern``, as ``re.findall`` gives it."""
    return text.str.extract_all(pattern).list.eval(pl.element().str.extract(pattern, 1))


def line_identity(lines: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``identity.line_identity`` of every (``row``, ``artist``, ``title``) of ``lines``.

    Returns one frame of ``row``, ``title_key``, ``normalized_title`` and one of credits,
    ``row``, ``name``, ``role``, ``key`` (``identity.artist_key``), in each line's order of credits
    (``LineIdentity.credits``).
    Every artist and title must be printable ASCII (``printable_ascii``).
    """
    artist, title = pl.col("artist"), pl.col("title")
    split_artist = artist.str.replace(_FEAT_IN_ARTIST, _SEPARATOR, n=1).str.split_exact(
        _SEPARATOR, 1
    )
    without_in_title = title.str.replace_all(_FEAT_IN_TITLE, "")
    parts = lines.select(
        "row",
        main=split_artist.struct.field("field_0"),
        featured=split_artist.struct.field("field_1"),
        title_groups=_groups(title, _FEAT_IN_TITLE),
        trailing=without_in_title.str.extract(_FEAT_TRAILING_TITLE, 1),
        remix_groups=_groups(title, _REMIX_CREDIT),
        normalized_title=fold(without_in_title.str.replace_all(_FEAT_TRAILING_TITLE, "")),
    )
    # In ``line_identity``'s order of credits: by line, then part, then position in the part
    # (each part's frame is in line order, and the stable sort keeps the rest).
    names = pl.concat(
        [
            _long(parts, pl.col("main"), _PRIMARY, _ARTIST_SEPARATORS),
            _long(parts, pl.col("featured"), _FEATURED_IN_ARTIST, _FEATURED_SEPARATORS),
            _long(parts, pl.col("title_groups"), _FEATURED_IN_TITLE, _FEATURED_SEPARATORS),
            _long(parts, pl.col("trailing"), _FEATURED_TRAILING, _FEATURED_SEPARATORS),
            _long(parts, pl.col("remix_groups"), _REMIXER, _ARTIST_SEPARATORS),
        ]
    ).sort("row", maintain_order=True)
    names = names.with_columns(key=fold(pl.col("name")))
    # ``identity.remixers_from_title``: no version words, no bare numbers.
    names = names.filter(
        (pl.col("part") != _REMIXER)
        | ~(
            pl.col("key").is_in(sorted(identity._NOT_REMIXERS))
            | pl.col("key").str.contains("^[0-9]+$")
        )
    )
    credits = (
        names.filter(pl.col("key") != "")
        .unique(subset=["row", "key", "role"], keep="first", maintain_order=True)
        .select("row", "name", "role", "key")
    )
    keys = (
        names.filter((pl.col("part") != _REMIXER) & (pl.col("key") != ""))
        .group_by("row")
        .agg(names=pl.col("key").unique().sort().str.join("|"))
    )
    keyed = parts.select("row", "normalized_title").join(keys, on="row", how="left")
    keyed = keyed.select(
        "row",
        title_key=pl.concat_str(
            pl.col("names").fill_null(""), pl.lit("::"), pl.col("normalized_title")
        ),
        normalized_title="normalized_title",
    )
    return keyed, credits


def _long(parts: pl.DataFrame, source: pl.Expr, part: int, separators: str) -> pl.DataFrame:
    """The names of one part of every line, one per row of the result, in order."""
    frame = parts.select("row", text=source)
    if frame.schema["text"] == pl.List(pl.String):
        frame = frame.filter(pl.col("text").list.len() > 0).explode("text")
    frame = frame.filter(pl.col("text").is_not_null())
    frame = frame.select("row", name=_names(pl.col("text"), separators)).explode("name")
    return frame.filter(pl.col("name").is_not_null()).select(
        "row",
        pl.lit(part, pl.Int8).alias("part"),
        "name",
        pl.lit(_ROLE_OF_PART[part]).alias("role"),
    )
