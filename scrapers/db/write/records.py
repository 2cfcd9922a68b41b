"""Turn untrusted items into validated rows, or say exactly why not.

Items come from the spider (``SetlistItem``/``TrackItem``), from importers and scripts as plain
dicts in the testing plan's shape (``track_name``, ``artist_name``, ``isrc``, …), and from spool
files written by an earlier crawl. Everything PostgreSQL would refuse (NUL bytes, values that
break a CHECK) is caught here, so that one bad item is rejected alone instead of aborting the
batch it travels in. Each field's reader is in ``scrapers.db.write.fields``; normalisation itself is
``scrapers.identity``'s job.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from scrapers import identity
from scrapers.db.write import fields
from scrapers.db.write.fields import (
    MAX_LIST_ENTRIES,
    MAX_METADATA_CHARS,
    MAX_NAME_CHARS,
    MAX_SHORT_CHARS,
    MAX_URL_CHARS,
    Rejected,
)
from scrapers.items import TrackItem, resolve_aliases, to_plain
from scrapers.statuses import CreditRole, EnrichmentStatus, RejectionCode

# Descriptive track columns. A non-null incoming value replaces the stored one; null never
# erases. ``FILL_ONLY`` columns are identifiers or identity: only filled when still empty.
OVERWRITE_COLUMNS = ("bpm", "duration_ms", "key", "label", "release_date", "genre")
FILL_ONLY_COLUMNS = ("musicbrainz_id", "version")
ENRICHMENT_STATUSES = tuple(EnrichmentStatus)
ROLES = tuple(CreditRole)

# Every field a track item may carry: the rest goes to metadata["extra"].
_TRACK_FIELDS = frozenset(TrackItem.fields)
# Values that cannot hold a NUL byte.
_SCALARS = (int, float, bool, Decimal)
# Values that JSON stores unchanged and whose size their length bounds.
_FLAT_JSON = frozenset({str, bool, type(None)})
# A plain constant: an enum member's lookup costs a class attribute walk on every row.
_REMIXER = str(CreditRole.REMIXER)
_VERSION_BRACKET = re.compile(
    r"[\(\[]([^\(\)\[\]]*\b(?:mix|edit|remix|version|rework|bootleg|dub|vip|flip|remaster(?:ed)?)"
    r"\b[^\(\)\[\]]*)[\)\]]",
    re.IGNORECASE,
)


@dataclass
class SetlistRecord:
    source: str
    source_id: str
    url: str | None = None
    title: str | None = None
    djs: list[str] = field(default_factory=list)
    event: str | None = None
    set_date: dt.date | None = None
    genres: list[str] = field(default_factory=list)
    stated_track_count: int | None = None
    # Set by the spider on a whole page (migration 007): its digest and its number of rows.
    content_hash: str | None = None
    row_count: int | None = None
    # When its page was fetched (``SetlistItem.fetched_at``); None when the producer did not say.
    fetched_at: dt.datetime | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.source_id)


@dataclass
class Placement:
    """Where a track row sits in a setlist (``setlist_tracks``)."""

    setlist_key: tuple[str, str]
    row_index: int
    position: int | None = None
    played_with_previous: bool = False
    is_mashup: bool = False
    mashup_parent_row: int | None = None
    cue_seconds: int | None = None
    raw_artist: str | None = None
    raw_title: str | None = None
    label: str | None = None
    site_track_id: str | None = None
    is_unknown: bool = False
    is_partial_id: bool = False
    fetched_at: dt.datetime | None = None  # when the row's page was fetched


@dataclass
class TrackRecord:
    """A row of a setlist and/or a recording. ``is_track`` is False for "ID - ID" rows."""

    is_track: bool
    placement: Placement | None
    artist: str = ""
    title: str = ""
    title_key: str = ""
    normalized_title: str = ""
    isrc: str | None = None
    spotify_id: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    is_remix: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    credits: list[tuple[str, str]] = field(default_factory=list)
    enrichment_status: str | None = None
    # Identifier kinds whose raw value was invalid (stored NULL, raw kept in metadata).
    invalid_identifiers: list[str] = field(default_factory=list)
    # The importer's digest of the source row, set by the writer: stored with the row's track
    # (``known_rows``) so that importing the row again skips it.
    row_digest: bytes | None = None
    # ``identity.artist_key`` of each credit, when the producer has them (the columnar reader
    # computes them with the credits); ``artist_keys`` folds the names otherwise. Derived from
    # ``credits``, so no part of the record's value.
    credit_keys: list[str] | None = field(default=None, compare=False, repr=False)

    def artist_keys(self) -> list[str]:
        """The artist key of each credit, in order: the writer locks and stores artists by them,
        folded once per record."""
        if self.credit_keys is None:
            self.credit_keys = [identity.artist_key(name) for name, _ in self.credits]
        return self.credit_keys

    @property
    def tier(self) -> str:
        """The strongest identifier the item carried: the conflict target its upsert uses."""
        if self.isrc:
            return "isrc"
        if self.spotify_id:
            return "spotify"
        return "title"


Record = SetlistRecord | TrackRecord


def is_setlist(item: Mapping[str, Any]) -> bool:
    return "source_id" in item and "setlist_source_id" not in item


def to_record(item: Any) -> Record:
    """Validate and normalise one item; raises ``Rejected`` with the reason."""
    try:
        plain = to_plain(item)
    except Exception as error:
        raise Rejected(
            RejectionCode.WRONG_TYPE, f"not an item or mapping: {type(item).__name__}"
        ) from error
    resolve_aliases(plain)
    _reject_nul_bytes(plain)
    if is_setlist(plain):
        return _setlist_record(plain)
    return _track_record(plain)


def _reject_nul_bytes(item: Mapping[str, Any]) -> None:
    # Items are nearly always flat dicts of text, numbers and None: one substring test per
    # text, and the recursive walk only for a value that may hide a NUL byte.
    for key, value in item.items():
        if type(key) is str and "\x00" not in key:
            if isinstance(value, str):  # a StrEnum too: its text is what is stored
                if "\x00" not in value:
                    continue
            elif value is None or type(value) in _SCALARS:
                continue
            elif "\\x00" not in repr(value):
                # repr() escapes a NUL byte anywhere inside as "\x00": no escape, no NUL to find.
                continue
        where = _nul_path({key: value})
        if where is not None:
            raise Rejected(RejectionCode.NUL_BYTE, f"{where or 'item'} contains a NUL byte")


def _nul_path(value: Any) -> str | None:
    """Where a NUL byte hides in ``value`` ("" for the value itself), or None."""
    if isinstance(value, str):
        return "" if "\x00" in value else None
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if "\x00" in str(key):
                return "a key"
            found = _nul_path(inner)
            if found is not None:
                return f"{key}.{found}" if found else str(key)
    elif isinstance(value, list | tuple):
        for inner in value:
            found = _nul_path(inner)
            if found is not None:
                return found
    return None


def _setlist_record(item: dict[str, Any]) -> SetlistRecord:
    source = fields.text(item, "source", MAX_SHORT_CHARS) or "unknown"
    source_id = fields.text(item, "source_id", MAX_SHORT_CHARS)
    if not source_id:
        raise Rejected(RejectionCode.MISSING_SOURCE_ID, "setlist item has no source_id")
    return SetlistRecord(
        source=source,
        source_id=source_id,
        url=fields.text(item, "url", MAX_URL_CHARS),
        title=fields.text(item, "title", MAX_NAME_CHARS),
        djs=fields.text_list(item, "djs"),
        event=fields.text(item, "event", MAX_NAME_CHARS),
        set_date=fields.date(item, "date", {}),
        genres=fields.text_list(item, "genres"),
        stated_track_count=fields.integer(item, "stated_track_count"),
        content_hash=fields.text(item, "content_hash", MAX_SHORT_CHARS),
        row_count=_row_count(item),
        fetched_at=fields.timestamp(item, "fetched_at"),
    )


def _row_count(item: Mapping[str, Any]) -> int | None:
    count = fields.integer(item, "row_count")
    if count is not None and count < 0:
        raise Rejected(RejectionCode.WRONG_VALUE, f"row_count {count} is negative")
    return count


def _track_record(item: dict[str, Any]) -> TrackRecord:
    artist = fields.text(item, "artist", MAX_NAME_CHARS)
    title = fields.text(item, "title", MAX_NAME_CHARS)
    placement = _placement(item, artist, title)
    unknown = bool(item.get("is_unknown") or item.get("is_partial_id"))
    if unknown or (title and identity.is_unknown_text(title)):
        if placement is None:
            raise Rejected(
                RejectionCode.UNKNOWN_TRACK, "an unidentified track (ID) with no setlist row"
            )
        placement.is_unknown = placement.is_unknown or not placement.is_partial_id
        return TrackRecord(is_track=False, placement=placement, artist=artist or "", title=title)
    if not title:
        raise Rejected(RejectionCode.MISSING_TITLE, "track has no title")
    if not artist:
        raise Rejected(RejectionCode.MISSING_ARTIST, "track has no artist")

    # Fields are read in a fixed order: the first bad one is the reason an item is rejected.
    metadata = _metadata(item)
    invalid: dict[str, Any] = {}
    line = identity.line_identity(artist, title)
    isrc = fields.identifier(item, "isrc", identity.parse_isrc, invalid)
    spotify_id = fields.identifier(item, "spotify_id", identity.parse_spotify_id, invalid)
    credits = _credits(item, line)
    enrichment_status = fields.choice(item, "enrichment_status", ENRICHMENT_STATUSES)
    invalid_identifiers = sorted(invalid)
    values = {
        "bpm": fields.number(item, "bpm", 0, fields.MAX_BPM, invalid),
        "duration_ms": fields.bounded_integer(item, "duration_ms", fields.MAX_DURATION_MS, invalid),
        "key": fields.text(item, "key", MAX_SHORT_CHARS),
        "label": fields.text(item, "label", MAX_NAME_CHARS),
        "release_date": fields.date(item, "release_date", invalid),
        "genre": fields.text(item, "genre", MAX_SHORT_CHARS),
        "musicbrainz_id": fields.uuid(item, "musicbrainz_id", invalid),
        "version": fields.text(item, "version", MAX_SHORT_CHARS) or _version_from_title(title),
    }
    is_remix = fields.flag(item, "is_remix")
    if is_remix is None:
        is_remix = "remix" in title.casefold() or any(role == _REMIXER for _, role in credits)
    if invalid:
        metadata.setdefault("invalid", {}).update(invalid)
    if not _TRACK_FIELDS.issuperset(item):
        extra = {k: v for k, v in item.items() if k not in _TRACK_FIELDS and v is not None}
        if extra:
            metadata.setdefault("extra", {}).update(extra)
    return TrackRecord(
        is_track=True,
        placement=placement,
        artist=artist,
        title=title,
        title_key=line.title_key,
        normalized_title=line.normalized_title,
        isrc=isrc,
        spotify_id=spotify_id,
        values=values,
        is_remix=is_remix,
        metadata=_bounded_metadata(metadata),
        credits=credits,
        enrichment_status=enrichment_status,
        invalid_identifiers=invalid_identifiers,
    )


def _placement(item: dict[str, Any], artist: str | None, title: str | None) -> Placement | None:
    source_id = fields.text(item, "setlist_source_id", MAX_SHORT_CHARS)
    if not source_id:
        return None
    row_index = fields.integer(item, "row_index")
    if row_index is None or row_index < 0:
        raise Rejected(RejectionCode.MISSING_ROW_INDEX, "setlist track row has no valid row_index")
    cue = fields.integer(item, "cue_seconds")
    return Placement(
        setlist_key=(fields.text(item, "setlist_source", MAX_SHORT_CHARS) or "unknown", source_id),
        row_index=row_index,
        position=fields.integer(item, "position"),
        played_with_previous=fields.boolean(item, "played_with_previous"),
        is_mashup=fields.boolean(item, "is_mashup"),
        mashup_parent_row=fields.integer(item, "mashup_parent_row"),
        cue_seconds=cue if cue is not None and cue >= 0 else None,
        raw_artist=artist,
        raw_title=title,
        label=fields.text(item, "label", MAX_NAME_CHARS),
        site_track_id=fields.text(item, "site_track_id", MAX_SHORT_CHARS),
        is_unknown=fields.boolean(item, "is_unknown"),
        is_partial_id=fields.boolean(item, "is_partial_id"),
        fetched_at=fields.timestamp(item, "fetched_at"),
    )


def _credits(item: Mapping[str, Any], line: identity.LineIdentity) -> list[tuple[str, str]]:
    given = item.get("artists")
    if not given:
        return list(line.credits)
    if not isinstance(given, list | tuple) or len(given) > MAX_LIST_ENTRIES:
        raise Rejected(RejectionCode.WRONG_TYPE, "artists must be a list of {name, role}")
    credits = []
    for entry in given:
        if not isinstance(entry, Mapping):
            raise Rejected(RejectionCode.WRONG_TYPE, "artists entries must be {name, role}")
        name = fields.text(entry, "name", MAX_NAME_CHARS)
        role = entry.get("role") or CreditRole.PRIMARY
        if role not in ROLES:
            raise Rejected(
                RejectionCode.WRONG_VALUE, f"artist role must be one of {', '.join(ROLES)}"
            )
        if name and identity.artist_key(name):
            credits.append((name, str(role)))
    return credits


def _metadata(item: Mapping[str, Any]) -> dict[str, Any]:
    value = item.get("metadata")
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise Rejected(
            RejectionCode.WRONG_TYPE, f"metadata must be an object, got {type(value).__name__}"
        )
    return dict(value)


def _bounded_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    if not metadata:
        return metadata
    # The common case ({"source": "import:csv"}) is JSON as it stands: only its size to check.
    # JSON escapes a character into at most 6 ("\\u0001").
    size = 0
    for key, value in metadata.items():
        kind = type(value)
        if type(key) is not str or kind not in _FLAT_JSON:
            break
        if kind is str:
            size += len(key) + len(value)
    else:
        if 6 * size <= MAX_METADATA_CHARS:
            return metadata
    try:
        text = json.dumps(metadata, default=str)
    except (TypeError, ValueError) as error:
        raise Rejected(RejectionCode.WRONG_TYPE, f"metadata is not JSON: {error}") from error
    if len(text) > MAX_METADATA_CHARS:
        raise Rejected(RejectionCode.FIELD_TOO_LONG, f"metadata has {len(text)} characters")
    return json.loads(text)


def _version_from_title(title: str) -> str | None:
    if "(" not in title and "[" not in title:
        return None  # the version sits in a bracket: most titles have none
    matches = _VERSION_BRACKET.findall(title)
    return matches[-1].strip()[:MAX_SHORT_CHARS] if matches else None
