"""Turn untrusted items into validated rows, or say exactly why not.

Items come from the spider (``SetlistItem``/``TrackItem``), from importers and scripts as plain
dicts in the testing plan's shape (``track_name``, ``artist_name``, ``isrc``, …), and from spool
files written by an earlier crawl. Everything PostgreSQL would refuse (NUL bytes, values that
break a CHECK) is caught here, so that one bad item is rejected alone instead of aborting the
batch it travels in. Normalisation itself is ``scrapers.identity``'s job.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from itemadapter import ItemAdapter

from scrapers import identity
from scrapers.items import TrackItem, resolve_aliases
from scrapers.statuses import CreditRole, EnrichmentStatus, RejectionCode

MAX_NAME_CHARS = 500
MAX_SHORT_CHARS = 200
MAX_URL_CHARS = 2048
MAX_LIST_ENTRIES = 100
MAX_METADATA_CHARS = 20_000
MAX_INT = 2**31 - 1
# What rejected_items.payload keeps of a refused input; its full size and hash go beside it.
MAX_PAYLOAD_BYTES = 64 * 1024

# Descriptive track columns. A non-null incoming value replaces the stored one; null never
# erases. ``FILL_ONLY`` columns are identifiers or identity: only filled when still empty.
OVERWRITE_COLUMNS = ("bpm", "duration_ms", "key", "label", "release_date", "genre")
FILL_ONLY_COLUMNS = ("musicbrainz_id", "version")
ENRICHMENT_STATUSES = tuple(EnrichmentStatus)
ROLES = tuple(CreditRole)

# Every field a track item may carry: the rest goes to metadata["extra"].
_TRACK_FIELDS = frozenset(TrackItem.fields)
# How exports spell a flag; an empty cell is "not given".
_FLAG_TEXT = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
# Values that cannot hold a NUL byte.
_SCALARS = (int, float, bool, Decimal)
# Values that JSON stores unchanged and whose size their length bounds.
_FLAT_JSON = frozenset({str, bool, type(None)})
_VERSION_BRACKET = re.compile(
    r"[\(\[]([^\(\)\[\]]*\b(?:mix|edit|remix|version|rework|bootleg|dub|vip|flip|remaster(?:ed)?)"
    r"\b[^\(\)\[\]]*)[\)\]]",
    re.IGNORECASE,
)


class Rejected(ValueError):
    """The item cannot be stored. ``code`` labels the metric; ``str()`` is the stored reason."""

    def __init__(self, code: RejectionCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


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

    @property
    def tier(self) -> str:
        """The strongest identifier the item carried: the conflict target its upsert uses."""
        if self.isrc:
            return "isrc"
        if self.spotify_id:
            return "spotify"
        return "title"


Record = SetlistRecord | TrackRecord


def to_plain(item: Any) -> dict[str, Any]:
    """The item as a plain dict (what ``scrapy crawl -O items.jsonl`` would write)."""
    if isinstance(item, Mapping):
        return dict(item)
    return ItemAdapter(item).asdict()


@dataclass(frozen=True, slots=True)
class Payload:
    """What ``rejected_items`` keeps of a refused input: its start, its size and its hash.

    An input can be arbitrarily long (a 200 MB line); only its first ``MAX_PAYLOAD_BYTES`` are
    stored, as valid text. ``size`` and ``sha256`` describe all of it, and the location (file
    and line) says where the rest is. For an unreadable line they are those of its bytes in the
    file without the line end; for an item the writer refused, of its JSON text.
    """

    text: str
    size: int
    sha256: str

    @property
    def truncated(self) -> bool:
        return self.size > MAX_PAYLOAD_BYTES

    @classmethod
    def of(cls, data: str | bytes) -> Payload:
        digest = PayloadDigest()
        digest.update(data if isinstance(data, bytes) else utf8_bytes(data))
        return digest.payload()


class PayloadDigest:
    """A ``Payload`` built from chunks: all are counted and hashed, only the start is kept."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._size = 0
        self._head = bytearray()

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._size += len(chunk)
        room = MAX_PAYLOAD_BYTES - len(self._head)
        if room > 0:
            self._head += chunk[:room]

    def payload(self) -> Payload:
        return Payload(storable_text(bytes(self._head)), self._size, self._hash.hexdigest())


def storable_text(raw: bytes) -> str:
    """Bytes as PostgreSQL text: invalid UTF-8 (or a character cut at the end) replaced, NUL
    bytes escaped."""
    return raw.decode("utf-8", "replace").replace("\x00", "\\u0000")


def utf8_bytes(text: str) -> bytes:
    """UTF-8, and the bytes a text was read from: undecodable input survives as surrogates (see
    ``scrapers.importers.source``), which ``surrogateescape`` turns back into those bytes."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def payload_text(item: Any) -> str:
    """JSON text of an item for ``rejected_items``; NUL bytes survive as ``\\u0000`` escapes."""
    try:
        return json.dumps(to_plain(item), ensure_ascii=False, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return json.dumps({"unserialisable_item": repr(item)[:MAX_METADATA_CHARS]})


def is_setlist(fields: Mapping[str, Any]) -> bool:
    return "source_id" in fields and "setlist_source_id" not in fields


def to_record(item: Any) -> Record:
    """Validate and normalise one item; raises ``Rejected`` with the reason."""
    try:
        fields = to_plain(item)
    except Exception as error:
        raise Rejected(
            RejectionCode.WRONG_TYPE, f"not an item or mapping: {type(item).__name__}"
        ) from error
    resolve_aliases(fields)
    _reject_nul_bytes(fields)
    if is_setlist(fields):
        return _setlist_record(fields)
    return _track_record(fields)


def _reject_nul_bytes(fields: Mapping[str, Any]) -> None:
    # Items are nearly always flat dicts of text, numbers and None: one substring test per
    # text, and the recursive walk only for a value that may hide a NUL byte.
    for key, value in fields.items():
        if type(value) is str and type(key) is str:
            if "\x00" not in value and "\x00" not in key:
                continue
        elif (value is None or type(value) in _SCALARS) and "\x00" not in str(key):
            continue
        elif "\\x00" not in repr(value) and "\x00" not in str(key):
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


def _setlist_record(fields: dict[str, Any]) -> SetlistRecord:
    source = _text(fields, "source", MAX_SHORT_CHARS) or "unknown"
    source_id = _text(fields, "source_id", MAX_SHORT_CHARS)
    if not source_id:
        raise Rejected(RejectionCode.MISSING_SOURCE_ID, "setlist item has no source_id")
    return SetlistRecord(
        source=source,
        source_id=source_id,
        url=_text(fields, "url", MAX_URL_CHARS),
        title=_text(fields, "title", MAX_NAME_CHARS),
        djs=_text_list(fields, "djs"),
        event=_text(fields, "event", MAX_NAME_CHARS),
        set_date=_date(fields, "date", {}),
        genres=_text_list(fields, "genres"),
        stated_track_count=_int(fields, "stated_track_count"),
        content_hash=_text(fields, "content_hash", MAX_SHORT_CHARS),
        row_count=_row_count(fields),
    )


def _row_count(fields: Mapping[str, Any]) -> int | None:
    count = _int(fields, "row_count")
    if count is not None and count < 0:
        raise Rejected(RejectionCode.WRONG_VALUE, f"row_count {count} is negative")
    return count


def _track_record(fields: dict[str, Any]) -> TrackRecord:
    artist = _text(fields, "artist", MAX_NAME_CHARS)
    title = _text(fields, "title", MAX_NAME_CHARS)
    placement = _placement(fields, artist, title)
    unknown = bool(fields.get("is_unknown") or fields.get("is_partial_id"))
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

    metadata = _metadata(fields)
    invalid: dict[str, Any] = {}
    line = identity.line_identity(artist, title)
    record = TrackRecord(
        is_track=True,
        placement=placement,
        artist=artist,
        title=title,
        title_key=line.title_key,
        normalized_title=line.normalized_title,
        isrc=_identifier(fields, "isrc", identity.parse_isrc, invalid),
        spotify_id=_identifier(fields, "spotify_id", identity.parse_spotify_id, invalid),
        credits=_credits(fields, line),
        enrichment_status=_choice(fields, "enrichment_status", ENRICHMENT_STATUSES),
    )
    record.invalid_identifiers = sorted(invalid)
    record.values = {
        "bpm": _number(fields, "bpm", 0, 1000, invalid),
        "duration_ms": _bounded_int(fields, "duration_ms", invalid),
        "key": _text(fields, "key", MAX_SHORT_CHARS),
        "label": _text(fields, "label", MAX_NAME_CHARS),
        "release_date": _date(fields, "release_date", invalid),
        "genre": _text(fields, "genre", MAX_SHORT_CHARS),
        "musicbrainz_id": _uuid(fields, "musicbrainz_id", invalid),
        "version": _text(fields, "version", MAX_SHORT_CHARS) or _version_from_title(title),
    }
    is_remix = _flag(fields, "is_remix")
    record.is_remix = (
        is_remix
        if is_remix is not None
        else "remix" in title.casefold()
        or any(role == CreditRole.REMIXER for _, role in record.credits)
    )
    if invalid:
        metadata.setdefault("invalid", {}).update(invalid)
    extra = {k: v for k, v in fields.items() if k not in _TRACK_FIELDS and v is not None}
    if extra:
        metadata.setdefault("extra", {}).update(extra)
    record.metadata = _bounded_metadata(metadata)
    return record


def _placement(fields: dict[str, Any], artist: str | None, title: str | None) -> Placement | None:
    source_id = _text(fields, "setlist_source_id", MAX_SHORT_CHARS)
    if not source_id:
        return None
    row_index = _int(fields, "row_index")
    if row_index is None or row_index < 0:
        raise Rejected(RejectionCode.MISSING_ROW_INDEX, "setlist track row has no valid row_index")
    cue = _int(fields, "cue_seconds")
    return Placement(
        setlist_key=(_text(fields, "setlist_source", MAX_SHORT_CHARS) or "unknown", source_id),
        row_index=row_index,
        position=_int(fields, "position"),
        played_with_previous=_bool(fields, "played_with_previous"),
        is_mashup=_bool(fields, "is_mashup"),
        mashup_parent_row=_int(fields, "mashup_parent_row"),
        cue_seconds=cue if cue is not None and cue >= 0 else None,
        raw_artist=artist,
        raw_title=title,
        label=_text(fields, "label", MAX_NAME_CHARS),
        site_track_id=_text(fields, "site_track_id", MAX_SHORT_CHARS),
        is_unknown=_bool(fields, "is_unknown"),
        is_partial_id=_bool(fields, "is_partial_id"),
    )


def _text(fields: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if type(value) is not str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise Rejected(
                RejectionCode.WRONG_TYPE, f"{name} must be text, got {type(value).__name__}"
            )
        value = str(value)
    text = value.strip()
    if len(text) > limit:
        raise Rejected(
            RejectionCode.FIELD_TOO_LONG, f"{name} has {len(text)} characters (limit {limit})"
        )
    return text or None


def _text_list(fields: Mapping[str, Any], name: str) -> list[str]:
    value = fields.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise Rejected(RejectionCode.WRONG_TYPE, f"{name} must be a list of text")
    if len(value) > MAX_LIST_ENTRIES:
        raise Rejected(RejectionCode.FIELD_TOO_LONG, f"{name} has {len(value)} entries")
    texts = [_text({name: entry}, name, MAX_NAME_CHARS) for entry in value]
    return [text for text in texts if text]


def _int(fields: Mapping[str, Any], name: str) -> int | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Rejected(RejectionCode.WRONG_TYPE, f"{name} must be an integer, got bool")
    try:
        number = int(value)
    except (TypeError, ValueError) as error:
        raise Rejected(
            RejectionCode.WRONG_TYPE, f"{name} must be an integer, got {value!r:.40}"
        ) from error
    if abs(number) > MAX_INT:
        raise Rejected(RejectionCode.WRONG_VALUE, f"{name} {number} is out of range")
    return number


def _bool(fields: Mapping[str, Any], name: str) -> bool:
    value = fields.get(name)
    if value is None:
        return False
    if not isinstance(value, bool | int):
        raise Rejected(RejectionCode.WRONG_TYPE, f"{name} must be true or false")
    return bool(value)


def _flag(fields: Mapping[str, Any], name: str) -> bool | None:
    """True, false, or None when not given; exports write it as text ("true", "0", "no")."""
    value = fields.get(name)
    if value is None or isinstance(value, bool):
        return value
    if value == "":
        return None
    if isinstance(value, str) and value.strip().casefold() in _FLAG_TEXT:
        return _FLAG_TEXT[value.strip().casefold()]
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise Rejected(RejectionCode.WRONG_TYPE, f"{name} must be true or false, got {value!r:.40}")


def _number(
    fields: Mapping[str, Any], name: str, low: float, high: float, invalid: dict[str, Any]
) -> Decimal | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise Rejected(
            RejectionCode.WRONG_TYPE, f"{name} must be a number, got {type(value).__name__}"
        )
    if type(value) is str and value.isascii() and value.isdigit():
        # Exports write whole numbers as text ("128", "215000"): no Decimal parse needed.
        value = int(value)
    if type(value) is int and low < value < high:
        return Decimal(value)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as error:
        raise Rejected(
            RejectionCode.WRONG_TYPE, f"{name} must be a number, got {value!r:.40}"
        ) from error
    if not number.is_finite() or not low < number < high:
        invalid[name] = value
        return None
    return round(number, 2)


def _bounded_int(fields: Mapping[str, Any], name: str, invalid: dict[str, Any]) -> int | None:
    number = _number(fields, name, 0, MAX_INT, invalid)
    return None if number is None else int(number)


def _date(fields: Mapping[str, Any], name: str, invalid: dict[str, Any]) -> dt.date | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        raise Rejected(
            RejectionCode.WRONG_TYPE, f"{name} must be an ISO date, got {type(value).__name__}"
        )
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        # "2019" or "2019-05" (Spotify's coarse precision) or garbage: keep the raw text.
        invalid[name] = value[:MAX_SHORT_CHARS]
        return None


def _uuid(fields: Mapping[str, Any], name: str, invalid: dict[str, Any]) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        invalid[name] = str(value)[:MAX_SHORT_CHARS]
        return None


def _identifier(fields: Mapping[str, Any], name: str, parse: Any, invalid: dict[str, Any]) -> Any:
    try:
        return parse(fields.get(name))
    except identity.InvalidIdentifier:
        invalid[name] = str(fields.get(name))[:MAX_SHORT_CHARS]
        return None


def _choice(fields: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise Rejected(RejectionCode.WRONG_VALUE, f"{name} must be one of {', '.join(allowed)}")
    return str(value)


def _credits(fields: Mapping[str, Any], line: identity.LineIdentity) -> list[tuple[str, str]]:
    given = fields.get("artists")
    if not given:
        return list(line.credits)
    if not isinstance(given, list | tuple) or len(given) > MAX_LIST_ENTRIES:
        raise Rejected(RejectionCode.WRONG_TYPE, "artists must be a list of {name, role}")
    credits = []
    for entry in given:
        if not isinstance(entry, Mapping):
            raise Rejected(RejectionCode.WRONG_TYPE, "artists entries must be {name, role}")
        name = _text(entry, "name", MAX_NAME_CHARS)
        role = entry.get("role") or CreditRole.PRIMARY
        if role not in ROLES:
            raise Rejected(
                RejectionCode.WRONG_VALUE, f"artist role must be one of {', '.join(ROLES)}"
            )
        if name and identity.artist_key(name):
            credits.append((name, str(role)))
    return credits


def _metadata(fields: Mapping[str, Any]) -> dict[str, Any]:
    value = fields.get("metadata")
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
    if all(type(key) is str and type(value) in _FLAT_JSON for key, value in metadata.items()):
        # The common case ({"source": "import:csv"}) is JSON as it stands: only its size to check.
        # JSON escapes a character into at most 6 ("\\u0001").
        size = sum(len(key) + len(value) for key, value in metadata.items() if type(value) is str)
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
    matches = _VERSION_BRACKET.findall(title)
    return matches[-1].strip()[:MAX_SHORT_CHARS] if matches else None
