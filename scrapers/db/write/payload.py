"""What ``rejected_items`` keeps of a refused input: its start as text, its size and its hash.

Readers build a payload from a line they cannot read, the writer from an item it refuses; both
bound what is stored, however large the input.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from scrapers.db.write.fields import MAX_METADATA_CHARS
from scrapers.items import to_plain

# What rejected_items.payload keeps of a refused input; its full size and hash go beside it.
MAX_PAYLOAD_BYTES = 64 * 1024


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
