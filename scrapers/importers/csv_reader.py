"""CSV catalogues: one track per line, named columns, header required.

Columns (case and surrounding spaces ignored; order free; unknown columns are reported once and
ignored): the fields of ``scrapers.items.RECORDING_FIELDS``, ``artist`` and ``title`` required:
``isrc``, ``spotify_id`` (id, URI or URL), ``musicbrainz_id``, ``duration_ms``, ``bpm``, ``key``,
``genre``, ``label``, ``release_date``, ``version`` and ``is_remix`` (true/false, yes/no, 1/0).

Every line is one row, read on its own, so that no broken line can take others with it:

* a quoted field that is not closed on its line is a broken quote (a catalogue's fields never
  hold line breaks): the row is rejected, and the lines after it are read as rows of their own
  instead of becoming part of its field. Should the field really have gone on, the line that
  would have closed it (a quote inside an unquoted field) is rejected too;
* a line over ``lines.MAX_LINE_BYTES`` (say a field of many megabytes) is rejected and streamed
  past without being held;
* anything else the csv module refuses rejects that line alone.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator

from scrapers.db.payload import Payload
from scrapers.importers.lines import MAX_LINE_BYTES, TOO_LONG, read_lines, without_line_end
from scrapers.importers.source import FileReader, SourceRow, track_row
from scrapers.items import RECORDING_FIELDS

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("artist", "title")
# Every other field that describes a recording (scrapers.items.RECORDING_FIELDS).
OPTIONAL_COLUMNS = tuple(name for name in RECORDING_FIELDS if name not in REQUIRED_COLUMNS)
COLUMNS = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
UNCLOSED_QUOTE = "quoted field not closed on its line (the next lines are read as rows)"
STRAY_QUOTE = "stray quote closing a field opened on an earlier line"
# A header that is not one is quoted back this far at most.
SHOWN_NAMES = 8
SHOWN_NAME_CHARS = 40

# A line can never hold a field longer than itself: the csv module's own limit never fires.
csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES + 2))


class CsvHeaderError(ValueError):
    """The file has no usable header; nothing in it can be read."""


def header_problem(header: list[str]) -> str | None:
    """Why ``header`` (a first line's fields) is not a catalogue header; None when it is."""
    names = {name.strip().lower().lstrip("\ufeff") for name in header}
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if not missing:
        return None
    shown = [repr(name[:SHOWN_NAME_CHARS]) for name in header[:SHOWN_NAMES]]
    if len(header) > SHOWN_NAMES:
        shown.append(f"… {len(header)} in all")
    return (
        f"header lacks {', '.join(missing)}: its first line holds {', '.join(shown) or 'nothing'}"
        f" (optional columns: {', '.join(OPTIONAL_COLUMNS)})"
    )


class CsvReader(FileReader):
    format_name = "csv"

    def rows(self) -> Iterator[SourceRow]:
        with self.open_binary() as handle:
            feed = _LineFeed(read_lines(handle))
            records = csv.reader(feed)
            header = next(records, None)
            if header is None:
                raise CsvHeaderError("empty file, a header row is required")
            if isinstance(feed.line, Payload):
                raise CsvHeaderError(f"the header is a {TOO_LONG}")
            columns = self._columns(header, feed.took_next_line)
            feed.record_done()
            opened_at: int | None = None  # line of a broken quote the csv module would extend
            while True:
                try:
                    record = next(records)
                except StopIteration:
                    break
                except csv.Error as error:
                    record, problem = [], f"not CSV: {error}"
                else:
                    problem = None
                number, line, unclosed = feed.number, feed.line, feed.took_next_line
                feed.record_done()
                if isinstance(line, Payload):
                    yield SourceRow.rejected(self.location(number), TOO_LONG, line)
                    continue
                raw = without_line_end(line)
                if problem is None and opened_at is not None and b'"' in raw:
                    # Where the csv module would have closed the broken quote.
                    if _quote_inside_field(raw):
                        problem = STRAY_QUOTE
                    opened_at = None
                if unclosed:
                    problem, opened_at = problem or UNCLOSED_QUOTE, number
                if problem is not None:
                    yield SourceRow.rejected(self.location(number), problem, raw)
                elif any(field.strip() for field in record):
                    yield self._row(number, record, raw, columns, len(header))
        self.finish()

    def _columns(self, header: list[str], unclosed: bool) -> dict[str, int]:
        problem = header_problem(header)
        if problem:
            raise CsvHeaderError(problem)
        if unclosed:
            raise CsvHeaderError("the header line has a quote that is not closed on it")
        names = [name.strip().lower().lstrip("\ufeff") for name in header]
        unknown = sorted(set(names) - set(COLUMNS) - {""})
        if unknown:
            logger.warning("%s: ignoring unknown columns %s", self.label, ", ".join(unknown))
        return {name: names.index(name) for name in COLUMNS if name in names}

    def _row(
        self, line: int, record: list[str], raw: bytes, columns: dict[str, int], width: int
    ) -> SourceRow:
        location = self.location(line)
        if len(record) != width:
            return SourceRow.rejected(location, f"{len(record)} fields, header has {width}", raw)
        fields = {name: record[index].strip() for name, index in columns.items()}
        return track_row(location, fields, {"source": "import:csv"}, raw)


class _LineFeed:
    """Hands the csv module one physical line at a time, and never a second for one record.

    When the csv module asks for the next line before it has returned a record, a quoted field
    ran past the end of the line: the feed closes it with a quote instead (so that the record
    ends there, and ``took_next_line`` says so) and keeps the next line for the next record.
    """

    def __init__(self, lines: Iterator[bytes | Payload]) -> None:
        self._lines = lines
        self.number = 0
        self.line: bytes | Payload = b""
        self.took_next_line = False
        self._in_record = False

    def __iter__(self) -> Iterator[str]:
        while True:
            if self._in_record:
                self.took_next_line = True
                yield '"\n'
                continue
            line = next(self._lines, None)
            if line is None:
                return
            self.number += 1
            self.line = line
            self._in_record = True
            # An over-long line is rejected by the reader: the csv module sees a blank line.
            text = "" if isinstance(line, Payload) else line.decode("utf-8", "surrogateescape")
            if self.number == 1:
                text = text.removeprefix("\ufeff")
            yield text if text.endswith("\n") else text + "\n"

    def record_done(self) -> None:
        self._in_record = False
        self.took_next_line = False


def _quote_inside_field(raw: bytes) -> bool:
    """Whether the line's first quote stands inside a field rather than opening one."""
    first = raw.index(b'"')
    return first > 0 and raw[first - 1 : first] != b","
