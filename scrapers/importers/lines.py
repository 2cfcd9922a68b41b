"""The physical lines of a file in bounded memory: a line over the limit is streamed past.

Line-based exports (JSON lines, CSV) are read one line at a time, but a broken or hostile file
can hold a line of hundreds of megabytes. No line longer than ``MAX_LINE_BYTES`` can hold an item
the catalogue would store (names are at most 500 characters, metadata 20,000), so such a line is
never held: it is read in chunks, counted and hashed, and only its start is kept for
``rejected_items``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from scrapers.db.write.payload import Payload, PayloadDigest

MAX_LINE_BYTES = 1 << 20
TOO_LONG = f"line longer than {MAX_LINE_BYTES:,} bytes"
_CHUNK_BYTES = 1 << 16


def read_lines(binary: IO[bytes], *, max_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes | Payload]:
    """Every line of ``binary`` (split at ``\\n``): its bytes with the line end, or, for a line
    longer than ``max_bytes``, only what ``rejected_items`` keeps of it (never the line)."""
    while data := binary.readline(max_bytes + 1):
        if len(data) > max_bytes and not data.endswith(b"\n"):
            yield _stream_past(binary, data)
        else:
            yield data


def without_line_end(data: bytes) -> bytes:
    """A line's bytes as ``Payload`` describes them: without ``\\n`` or ``\\r\\n``."""
    return data.removesuffix(b"\n").removesuffix(b"\r")


def _stream_past(binary: IO[bytes], start: bytes) -> Payload:
    """Read to the end of the line that begins with ``start``, keeping only its ``Payload``."""
    digest = PayloadDigest()
    chunk = start
    held_cr = b""  # a "\r" at a chunk's end may be half of the "\r\n" line end
    while chunk:
        if chunk.endswith(b"\n"):
            digest.update(without_line_end(held_cr + chunk))
            break
        body = held_cr + chunk
        held_cr = b"\r" if body.endswith(b"\r") else b""
        digest.update(body[: len(body) - len(held_cr)])
        chunk = binary.readline(_CHUNK_BYTES)
    else:
        digest.update(held_cr)
    return digest.payload()
