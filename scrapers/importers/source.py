"""What every reader shares: the row it yields and the file it reads.

Readers only translate a format into ``TrackItem``/``SetlistItem`` fields. Deciding whether an
item can be stored (artist and title present, no NUL bytes, ISRC valid, numbers in range) is the
batch writer's job (``scrapers.db.write.records``), the same for the crawl and the importer; a
reader rejects only what it cannot read at all (broken JSON or CSV, undecodable bytes).
"""

from __future__ import annotations

import hashlib
import io
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

from scrapers.db.write.payload import Payload
from scrapers.identity import normalize_isrc
from scrapers.importers.jsonstream import ArrayElement
from scrapers.statuses import EnrichmentStatus

_UNDECODABLE = re.compile("[\udc80-\udcff]")
# Byte order marks of the encodings a spreadsheet may save "Unicode text" in (UTF-32 first:
# its little-endian mark begins with UTF-16's).
_BYTE_ORDER_MARKS = (
    (b"\x00\x00\xfe\xff", "UTF-32", "big-endian"),
    (b"\xff\xfe\x00\x00", "UTF-32", "little-endian"),
    (b"\xfe\xff", "UTF-16", "big-endian"),
    (b"\xff\xfe", "UTF-16", "little-endian"),
)
ENCODING_SAMPLE_BYTES = 4096


class WrongEncoding(ValueError):
    """The file is text in an encoding other than UTF-8; the message names it."""


def check_utf8(head: bytes) -> None:
    """Raise ``WrongEncoding`` when a file's first bytes are UTF-16 or UTF-32 text.

    Named by its byte order mark, or, without one, by NUL bytes at every other position (what
    ASCII text looks like in UTF-16); everything else is read as UTF-8.
    """
    for mark, encoding, order in _BYTE_ORDER_MARKS:
        if head.startswith(mark):
            raise WrongEncoding(
                _convert_hint(encoding, f"{order}, byte order mark {mark.hex(' ').upper()}")
            )
    sample = head[:ENCODING_SAMPLE_BYTES]
    half = len(sample) // 2
    if half >= 2:
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        if max(even, odd) > half * 0.4 and min(even, odd) == 0:
            order = "little-endian" if odd > even else "big-endian"
            raise WrongEncoding(_convert_hint("UTF-16", f"{order}, no byte order mark"))


def _convert_hint(encoding: str, detail: str) -> str:
    return (
        f"the file is {encoding} text ({detail}); only UTF-8 is read: convert it first, e.g. "
        f"iconv -f {encoding} -t UTF-8 FILE > FILE.utf8"
    )


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One record of an input file: an item, or why it was rejected or skipped."""

    location: str
    # The fields of a ``TrackItem`` or ``SetlistItem``, as a plain dict (the writer takes both;
    # a dict is cheaper to build and to compare for the import's in-memory dedupe).
    item: dict[str, Any] | None = None
    error: str | None = None
    skipped: str | None = None
    # What rejected_items keeps of a rejected row (bounded, whatever the row's size).
    payload: Payload | None = None

    @classmethod
    def rejected(cls, location: str, reason: str, raw: str | bytes | Payload) -> SourceRow:
        """A row that cannot be read; ``raw`` is its text or bytes as found in the file."""
        payload = raw if isinstance(raw, Payload) else Payload.of(raw)
        return cls(location, error=reason, payload=payload)


class FileReader(ABC):
    """Base of every reader: opens the file and reports how far into it reading has got."""

    format_name: ClassVar[str]

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)
        self._binary: IO[bytes] | None = None
        self._finished = False

    @abstractmethod
    def rows(self) -> Iterator[SourceRow]:
        """The file's rows, in order, each read or refused with a reason."""

    def total_bytes(self) -> int:
        return self.path.stat().st_size

    def bytes_read(self) -> int:
        if self._finished:
            return self.total_bytes()
        if self._binary is None or self._binary.closed:
            return 0
        return self._binary.tell()

    def location(self, line: int) -> str:
        return f"{self.label}:{line}"

    def open_binary(self) -> IO[bytes]:
        """The file, once its start shows it is not UTF-16 or UTF-32 text (``WrongEncoding``)."""
        self._binary = open(self.path, "rb")  # noqa: SIM115 - closed by the reader's with-block
        try:
            check_utf8(self._binary.read(ENCODING_SAMPLE_BYTES))
        except WrongEncoding:
            self._binary.close()
            raise
        self._binary.seek(0)
        return self._binary

    def open_text(self, *, newline: str | None = None) -> io.TextIOWrapper:
        """UTF-8 text (a BOM is dropped); undecodable bytes survive as surrogates, see below."""
        return io.TextIOWrapper(
            self.open_binary(), encoding="utf-8-sig", errors="surrogateescape", newline=newline
        )

    def finish(self) -> None:
        self._finished = True


def object_rows(
    elements: Iterable[ArrayElement],
    location: Callable[[int], str],
    build: Callable[[str, dict[str, Any], str], SourceRow],
) -> Iterator[SourceRow]:
    """Rows from decoded JSON records: ``build(location, record, raw)`` for each object."""
    for element in elements:
        where = location(element.line)
        if element.error is not None:
            yield SourceRow.rejected(where, element.error, element.raw)
        elif not isinstance(element.value, dict):
            yield SourceRow.rejected(where, "not a JSON object", element.raw)
        else:
            yield build(where, element.value, element.text)


def starts_with_array(path: Path) -> bool:
    """Whether the file's first non-blank character (after a BOM) opens a JSON array."""
    with open(path, "rb") as handle:
        head = handle.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    return head.startswith(b"[")


def undecodable_reason(values: Iterable[Any]) -> str | None:
    """Rows decoded with surrogateescape carry invalid UTF-8 as surrogates: refuse them."""
    if _UNDECODABLE.search("".join(value for value in values if isinstance(value, str))):
        return "invalid UTF-8 in the row"
    return None


def text(value: Any) -> str | None:
    """A stripped string, or None for missing/empty; numbers (an all-digit title) become text."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    return stripped or None


def track_row(
    location: str, fields: Mapping[str, Any], extra: Mapping[str, Any], raw: str | bytes
) -> SourceRow:
    """``TrackItem`` fields from an export row, marked for enrichment when it has no valid ISRC.

    Values go to the writer as read: it validates them (missing artist or title, NUL bytes,
    invalid identifiers, numbers out of range) for every front door alike.
    """
    values = {name: value for name, value in fields.items() if value not in (None, "")}
    reason = undecodable_reason(values.values())
    if reason:
        return SourceRow.rejected(location, reason, raw)
    values["metadata"] = {k: v for k, v in extra.items() if v not in (None, {}, "", [])}
    if normalize_isrc(values.get("isrc")) is None:
        values["enrichment_status"] = EnrichmentStatus.PENDING
    return SourceRow(location, values)


def row_digest(item: dict[str, Any]) -> bytes | None:
    """The digest of a row as read: equal for identical rows, so it folds them within a run
    and recognises them in later runs (``known_rows``).

    None for items the writer will reject (no artist or title, a NUL byte): they are never
    folded nor skipped, so each such row gets its own ``rejected_items`` entry with its line.
    """
    # Readers build items in a fixed key order, so equal rows have equal reprs.
    text = repr(item)
    if not item.get("artist") or not item.get("title") or "\\x00" in text:
        return None
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def digest_of(row: SourceRow) -> bytes | None:
    """``row_digest`` of a row read with an item; None for a row without one (unreadable)."""
    return None if row.item is None else row_digest(row.item)
