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

from scrapers.db.write.payload import Payload
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
# What every row's item carries in its metadata.
CSV_METADATA = {"source": "import:csv"}

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
            lines = read_lines(handle)
            parser = CsvLines(self, next(lines, None))
            for number, line in enumerate(lines, start=2):
                row = parser.row(number, line)
                if row is not None:
                    yield row
        self.finish()


class CsvLines:
    """The rows of a CSV file's lines, given one physical line at a time, in order.

    Reads the header (``first_line``) at once: ``CsvHeaderError`` when there is none. A line
    without a quote never changes what later lines give, so a caller may hand over only some
    lines (``scrapers.importers.columnar`` reads the plain ones itself), as long as every line
    with a quote comes, in order.
    """

    def __init__(self, reader: FileReader, first_line: bytes | Payload | None) -> None:
        self.reader = reader
        self._feed = _LineFeed()
        self._records = csv.reader(self._feed)
        if first_line is None:
            raise CsvHeaderError("empty file, a header row is required")
        if isinstance(first_line, Payload):
            raise CsvHeaderError(f"the header is a {TOO_LONG}")
        self._feed.push(first_line.decode("utf-8", "surrogateescape").removeprefix("\ufeff"))
        header = next(self._records, [])
        self.width = len(header)
        self.columns = self._columns(header, self._feed.took_next_line)
        self._opened_at: int | None = None  # line of a broken quote the csv module would extend

    def row(self, number: int, line: bytes | Payload) -> SourceRow | None:
        """The row of line ``number``; None for a blank line."""
        location = self.reader.location(number)
        if isinstance(line, Payload):
            return SourceRow.rejected(location, TOO_LONG, line)
        # An over-long line is rejected above: the csv module never sees it.
        self._feed.push(line.decode("utf-8", "surrogateescape"))
        try:
            record = next(self._records)
        except csv.Error as error:
            record, problem = [], f"not CSV: {error}"
        else:
            problem = None
        raw = without_line_end(line)
        if problem is None and self._opened_at is not None and b'"' in raw:
            # Where the csv module would have closed the broken quote.
            if _quote_inside_field(raw):
                problem = STRAY_QUOTE
            self._opened_at = None
        if self._feed.took_next_line:
            problem, self._opened_at = problem or UNCLOSED_QUOTE, number
        if problem is not None:
            return SourceRow.rejected(location, problem, raw)
        if not any(field.strip() for field in record):
            return None
        if len(record) != self.width:
            return SourceRow.rejected(
                location, f"{len(record)} fields, header has {self.width}", raw
            )
        fields = {name: record[index].strip() for name, index in self.columns.items()}
        return track_row(location, fields, CSV_METADATA, raw)

    def _columns(self, header: list[str], unclosed: bool) -> dict[str, int]:
        problem = header_problem(header)
        if problem:
            raise CsvHeaderError(problem)
        if unclosed:
            raise CsvHeaderError("the header line has a quote that is not closed on it")
        names = [name.strip().lower().lstrip("\ufeff") for name in header]
        unknown = sorted(set(names) - set(COLUMNS) - {""})
        if unknown:
            logger.warning("%s: ignoring unknown columns %s", self.reader.label, ", ".join(unknown))
        return {name: names.index(name) for name in COLUMNS if name in names}


class _LineFeed:
    """Hands the csv module one physical line at a time, and never a second for one record.

    When the csv module asks for the next line before it has returned a record, a quoted field
    ran past the end of the line: the feed closes it with a quote instead (so that the record
    ends there, and ``took_next_line`` says so).
    """

    def __init__(self) -> None:
        self._text: str | None = None
        self.took_next_line = False

    def push(self, text: str) -> None:
        """The next physical line, for the csv module's next record."""
        self._text = text if text.endswith("\n") else text + "\n"
        self.took_next_line = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._text is None:
            self.took_next_line = True
            return '"\n'
        text, self._text = self._text, None
        return text


def _quote_inside_field(raw: bytes) -> bool:
    """Whether the line's first quote stands inside a field rather than opening one."""
    first = raw.index(b'"')
    return first > 0 and raw[first - 1 : first] != b","
