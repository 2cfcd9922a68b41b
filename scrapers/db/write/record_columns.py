"""The columnar fast path of ``records.to_record`` for flat rows of text (a CSV catalogue).

``to_record`` is the rule. This module evaluates it for a whole frame of rows at once, in the
domain where it can do so exactly: every field printable ASCII, and every value one that
``to_record`` takes as it stands (an identifier that parses, a whole number in range, an ISO date,
a canonical UUID, a text within its limit). A row outside that domain is not decided here: its
``fast`` column is false and the caller sends it through ``to_record``, which keeps, rejects or
notes it invalid as it always has. ``tests/test_record_columns.py`` checks that both give
identical records.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import polars as pl

from scrapers import identity
from scrapers import identity_columns as columns
from scrapers.db.write import fields, records
from scrapers.db.write.records import TrackRecord
from scrapers.statuses import CreditRole, EnrichmentStatus

_WHOLE_NUMBER = rf"^[0-9]{{1,{fields._WHOLE_NUMBER_DIGITS}}}$"
_ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_CANONICAL_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_ROLES = {role.value: role for role in CreditRole}
# Text columns stored as they are read (the reader has stripped them).
_PLAIN = ("key", "label", "genre", "musicbrainz_id")
# Text columns with their limits (``_track_record``'s ``fields.text`` calls).
_TEXT_LIMITS = {
    "artist": fields.MAX_NAME_CHARS,
    "title": fields.MAX_NAME_CHARS,
    "key": fields.MAX_SHORT_CHARS,
    "label": fields.MAX_NAME_CHARS,
    "genre": fields.MAX_SHORT_CHARS,
    "version": fields.MAX_SHORT_CHARS,
}


def track_columns(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The record columns of ``rows`` (``row`` and text columns named as ``TrackItem`` fields,
    stripped, null when empty), with ``fast`` saying which rows they are exact for, and the
    credits of those rows (``identity_columns.line_identity``)."""
    present = set(rows.columns)
    text = {
        name: pl.col(name) if name in present else pl.lit(None, pl.String)
        for name in (
            *_TEXT_LIMITS,
            *("isrc", "spotify_id", "bpm", "duration_ms", "release_date", "musicbrainz_id"),
            "is_remix",
        )
    }
    in_domain = pl.all_horizontal(
        columns.printable_ascii(pl.col(name)) for name in rows.columns if name != "row"
    )
    frame = rows.with_columns(_in_domain=in_domain)
    isrc, isrc_refused = columns.isrc(text["isrc"])
    spotify_id, spotify_refused = columns.spotify_id(text["spotify_id"])
    bpm, bpm_exact = _whole_number(text["bpm"], 0, fields.MAX_BPM)
    duration, duration_exact = _whole_number(text["duration_ms"], 0, fields.MAX_DURATION_MS)
    release_date, date_exact = _date(text["release_date"])
    flag = text["is_remix"].str.to_lowercase()
    frame = frame.with_columns(
        _isrc=isrc,
        _spotify_id=spotify_id,
        _bpm=bpm,
        _duration_ms=duration,
        _release_date=release_date,
        _given_remix=pl.when(flag.is_in(["true", "yes", "1"]))
        .then(True)
        .when(flag.is_in(["false", "no", "0"]))
        .then(False),
        _exact=pl.all_horizontal(
            text["artist"].is_not_null(),
            text["title"].is_not_null(),
            *(
                text[name].str.len_chars().fill_null(0) <= limit
                for name, limit in _TEXT_LIMITS.items()
            ),
            ~isrc_refused,
            ~spotify_refused,
            bpm_exact,
            duration_exact,
            date_exact,
            text["musicbrainz_id"].is_null() | text["musicbrainz_id"].str.contains(_CANONICAL_UUID),
            text["is_remix"].is_null() | flag.is_in(["true", "yes", "1", "false", "no", "0"]),
        ),
    )
    frame = frame.with_columns(fast=pl.col("_in_domain") & pl.col("_exact"))
    lines = frame.filter("fast").select("row", artist=text["artist"], title=text["title"])
    keyed, credits = columns.line_identity(lines)
    remixed = credits.filter(pl.col("role") == CreditRole.REMIXER.value).select("row").unique()
    frame = frame.join(keyed, on="row", how="left").with_columns(
        # ``identity.is_unknown_text``: a title that folds to "id" is no track.
        fast=pl.col("fast") & (columns.fold(text["title"]) != identity.UNKNOWN_TRACK_TEXT),
        _remix_credit=pl.col("row").is_in(remixed["row"].implode()),
        _title_version=text["title"]
        .str.extract_all(columns.engine_pattern(records._VERSION_BRACKET))
        .list.last()
        .str.slice(1)
        .str.head(-1)
        .str.strip_chars(" ")
        .str.head(fields.MAX_SHORT_CHARS),
    )
    frame = frame.with_columns(
        _version=pl.coalesce(text["version"], pl.col("_title_version")),
        _is_remix=pl.coalesce(
            pl.col("_given_remix"),
            text["title"].str.to_lowercase().str.contains("remix", literal=True)
            | pl.col("_remix_credit"),
        ),
        _status=pl.when(pl.col("_isrc").is_null()).then(pl.lit(EnrichmentStatus.PENDING.value)),
    )
    return frame, credits


def _whole_number(text: pl.Expr, low: int, high: int) -> tuple[pl.Expr, pl.Expr]:
    """``fields.number``/``bounded_integer`` of whole-number text strictly between the bounds."""
    whole = text.str.contains(_WHOLE_NUMBER)
    number = pl.when(whole).then(text.cast(pl.Int64, strict=False))
    exact = text.is_null() | (whole & (number > low) & (number < high)).fill_null(False)
    return number, exact


def _date(text: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """``fields.date`` of a ``YYYY-MM-DD`` text that names a day."""
    date = pl.when(text.str.contains(_ISO_DATE)).then(text.str.to_date("%Y-%m-%d", strict=False))
    exact = text.is_null() | (date.is_not_null() & (date.dt.year() >= dt.MINYEAR)).fill_null(False)
    return date, exact


def track_records(
    frame: pl.DataFrame, credits: pl.DataFrame, metadata: Mapping[str, Any]
) -> Iterator[TrackRecord]:
    """The ``TrackRecord`` of every fast row of ``frame`` (``track_columns`` with a ``line``
    column), in its order; ``credits`` keyed by ``line``; ``metadata`` is what the reader put in
    every item's metadata."""
    fast = frame.filter("fast")
    credits_of: dict[int, list[tuple[str, CreditRole]]] = {}
    keys_of: dict[int, list[str]] = {}
    for row, name, role, key in zip(
        *(credits[c].to_list() for c in ("line", "name", "role", "key")), strict=True
    ):
        credits_of.setdefault(row, []).append((name, _ROLES[role]))
        keys_of.setdefault(row, []).append(key)
    given = set(fast.columns)
    selected = fast.select(
        "line",
        "artist",
        "title",
        "title_key",
        "normalized_title",
        "_isrc",
        "_spotify_id",
        "_bpm",
        "_duration_ms",
        *(pl.col(name) if name in given else pl.lit(None).alias(name) for name in _PLAIN),
        "_release_date",
        "_version",
        "_is_remix",
        "_status",
    )
    for (
        number,
        artist,
        title,
        title_key,
        normalized_title,
        isrc,
        spotify_id,
        bpm,
        duration_ms,
        key,
        label,
        genre,
        musicbrainz_id,
        release_date,
        version,
        is_remix,
        status,
    ) in zip(*(column.to_list() for column in selected.iter_columns()), strict=True):
        yield TrackRecord(
            is_track=True,
            placement=None,
            artist=artist,
            title=title,
            title_key=title_key,
            normalized_title=normalized_title,
            isrc=isrc,
            spotify_id=spotify_id,
            values={
                "bpm": None if bpm is None else Decimal(bpm),
                "duration_ms": duration_ms,
                "key": key,
                "label": label,
                "release_date": release_date,
                "genre": genre,
                "musicbrainz_id": musicbrainz_id,
                "version": version,
            },
            is_remix=is_remix,
            metadata=dict(metadata),
            credits=credits_of.get(number, []),
            enrichment_status=status,
            credit_keys=keys_of.get(number, []),
        )
