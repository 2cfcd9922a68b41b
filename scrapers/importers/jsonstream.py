"""Read the elements of a JSON array one at a time, with line numbers, in bounded memory.

Spotify's exports are single JSON documents that can hold hundreds of thousands of records; the
standard ``json.load`` would hold the whole file (and its Python objects) at once. Here the text
is read in chunks and each element is decoded with ``json.JSONDecoder.raw_decode`` as soon as it
is complete, so memory is bounded by the chunk size plus the largest single element.

A broken element does not end the file: it is reported with its line, and reading resumes at the
next ``, {`` from which a whole element decodes (``{`` elements are what every export here holds).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, TextIO

from scrapers.db.write.payload import Payload, PayloadDigest, utf8_bytes
from scrapers.importers.lines import TOO_LONG, read_lines, without_line_end

CHUNK_CHARS = 1 << 20
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NEXT_OBJECT = re.compile(r",[ \t\n\r]*(?=\{)")
_DECODER = json.JSONDecoder()


class JsonStreamError(ValueError):
    """The document is not shaped as expected (no array where one should start)."""


@dataclass(frozen=True)
class ArrayElement:
    """One element: its value, or why it could not be decoded, with where it starts."""

    line: int
    value: Any
    text: str
    error: str | None = None
    # What is kept of a broken stretch too long to hold as ``text``.
    payload: Payload | None = None

    @property
    def raw(self) -> Payload | str:
        """What ``rejected_items`` keeps of it."""
        return self.text if self.payload is None else self.payload


class _Buffer:
    """A window of the text with the line number of its read position."""

    def __init__(self, stream: TextIO, chunk_chars: int) -> None:
        self.stream = stream
        self.chunk_chars = chunk_chars
        self.text = ""
        self.pos = 0
        self.line = 1
        self.eof = False

    def fill(self, at_least: int = 0) -> bool:
        """Read more text (keeping what is not consumed); False at the end of the stream."""
        if self.eof:
            return False
        chunk = self.stream.read(max(self.chunk_chars, at_least))
        if not chunk:
            self.eof = True
            return False
        self.text = self.text[self.pos :] + chunk
        self.pos = 0
        return True

    def advance(self, to: int) -> None:
        self.line += self.text.count("\n", self.pos, to)
        self.pos = to

    def skip_whitespace(self) -> str:
        """The next non-blank character ("" at the end), without consuming it."""
        while True:
            self.advance(_WHITESPACE.match(self.text, self.pos).end())
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.fill():
                return ""


def iter_array(
    stream: TextIO,
    opening: re.Pattern[str] | None = None,
    *,
    max_element_chars: int = 8 << 20,
    chunk_chars: int = CHUNK_CHARS,
    first_line: int = 1,
) -> Iterator[ArrayElement]:
    """Yield each element of the array that starts where ``opening`` matches (default: at once).

    ``opening`` must end just after the array's ``[``; it is searched in the first
    ``max_element_chars`` characters. ``first_line`` numbers the stream's first line.
    """
    buffer = _Buffer(stream, chunk_chars)
    buffer.line = first_line
    _seek_opening(buffer, opening or re.compile(r"\s*\["), max_element_chars)
    expecting_element = True
    while True:
        next_char = buffer.skip_whitespace()
        if next_char == "]" or (next_char == "" and not expecting_element):
            return
        if next_char == "":
            raise JsonStreamError(f"line {buffer.line}: the array is not closed")
        if not expecting_element:
            if next_char != ",":
                broken, resumed = _recover(buffer, "expected ',' or ']'", max_element_chars)
                yield broken
                if not resumed:
                    return
                expecting_element = True
                continue
            buffer.advance(buffer.pos + 1)
            expecting_element = True
            continue
        element = _decode_element(buffer, max_element_chars)
        if element.error is None:
            yield element
            expecting_element = False
            continue
        broken, resumed = _recover(buffer, element.error, max_element_chars)
        yield broken
        if not resumed:
            return


def _seek_opening(buffer: _Buffer, opening: re.Pattern[str], limit: int) -> None:
    while True:
        match = opening.search(buffer.text)
        if match:
            buffer.advance(match.end())
            return
        if len(buffer.text) > limit or not buffer.fill():
            raise JsonStreamError(f"no JSON array found (looked for {opening.pattern!r})")


def _decode_element(buffer: _Buffer, limit: int) -> ArrayElement:
    while True:
        try:
            value, end = _DECODER.raw_decode(buffer.text, buffer.pos)
        except json.JSONDecodeError as error:
            pending = len(buffer.text) - buffer.pos
            # Incomplete because the chunk ended mid-element: read more (doubling, so that a big
            # element costs O(n) decode attempts in total, not O(n) per chunk).
            truncated = _maybe_truncated(error, buffer.text)
            if truncated and pending < limit and buffer.fill(at_least=pending):
                continue
            if truncated and pending >= limit:
                return ArrayElement(buffer.line, None, "", f"record longer than {limit:,} chars")
            return ArrayElement(buffer.line, None, "", f"invalid JSON: {error.msg}")
        element = ArrayElement(buffer.line, value, buffer.text[buffer.pos : end])
        buffer.advance(end)
        return element


def _maybe_truncated(error: json.JSONDecodeError, text: str) -> bool:
    """Whether the decode may have failed only because the text stops mid-element."""
    return error.pos >= len(text) - 16 or error.msg.startswith("Unterminated string")


def _recover(buffer: _Buffer, reason: str, limit: int) -> tuple[ArrayElement, bool]:
    """Skip to the next element that decodes and report the skipped text as one broken element.

    Returns the broken element and whether an element to resume at was found. Skipped text is
    consumed as it is scanned (counted and hashed, only its start kept for the report), so a
    broken stretch of any length is crossed in bounded memory.
    """
    line = buffer.line
    skipped = _Skipped()
    search_from = buffer.pos + 1
    while True:
        match = _NEXT_OBJECT.search(buffer.text, search_from)
        if match is None:
            # Keep from the last comma on: its "{" may be in the next chunk.
            comma = buffer.text.rfind(",", search_from)
            cut = comma if comma > buffer.pos else max(buffer.pos, len(buffer.text) - 1)
            skipped.take(buffer, cut)
            if not buffer.fill():
                skipped.take(buffer, len(buffer.text))
                return ArrayElement(line, None, "", reason, skipped.payload()), False
            search_from = buffer.pos
            continue
        skipped.take(buffer, match.start())
        try:
            _DECODER.raw_decode(buffer.text, match.end())
        except json.JSONDecodeError as error:
            pending = len(buffer.text) - buffer.pos
            truncated = _maybe_truncated(error, buffer.text) and pending < limit
            if truncated and buffer.fill(at_least=pending):
                search_from = buffer.pos
                continue
            search_from = match.end()
            continue
        buffer.advance(match.end())
        return ArrayElement(line, None, "", reason, skipped.payload()), True


class _Skipped:
    """A skipped stretch of text, for the report: counted and hashed whole, its start kept."""

    def __init__(self) -> None:
        self._digest = PayloadDigest()

    def take(self, buffer: _Buffer, to: int) -> None:
        if to > buffer.pos:
            self._digest.update(utf8_bytes(buffer.text[buffer.pos : to]))
        buffer.advance(max(to, buffer.pos))

    def payload(self) -> Payload:
        return self._digest.payload()


def iter_lines(binary: IO[bytes], *, first_line: int = 1) -> Iterator[ArrayElement]:
    """Yield each non-blank line of a JSON-lines stream, decoded, or why it is not JSON.

    A line over ``lines.MAX_LINE_BYTES`` is streamed past (its ``payload`` says what is kept).
    """
    for number, line in enumerate(read_lines(binary), start=first_line):
        if isinstance(line, Payload):
            yield ArrayElement(number, None, "", TOO_LONG, line)
            continue
        if number == first_line:
            line = line.removeprefix(b"\xef\xbb\xbf")
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            # Kept as surrogates, so that the rejection hashes the line's own bytes.
            text = without_line_end(line).decode("utf-8", "surrogateescape")
            yield ArrayElement(number, None, text, "invalid UTF-8")
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            yield ArrayElement(number, None, text.rstrip("\r\n"), f"invalid JSON: {error.msg}")
            continue
        yield ArrayElement(number, value, text)
