"""CSV catalogues: one track per row, named columns, header required.

Columns (case and surrounding spaces ignored; order free; unknown columns are reported once and
ignored): ``artist`` and ``title`` (required), ``isrc``, ``spotify_id`` (id, URI or URL),
``musicbrainz_id``, ``duration_ms``, ``bpm``, ``key``, ``genre``, ``label``, ``release_date``.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Iterator

from scrapers.importers.source import FileReader, SourceRow, track_row

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("artist", "title")
COLUMNS = (
    *REQUIRED_COLUMNS,
    "isrc",
    "spotify_id",
    "musicbrainz_id",
    "duration_ms",
    "bpm",
    "key",
    "genre",
    "label",
    "release_date",
)

# A catalogue's notes column can be long; the csv module's 128 KiB default is too tight.
csv.field_size_limit(min(sys.maxsize, 16 << 20))


class CsvHeaderError(ValueError):
    """The file has no usable header; nothing in it can be read."""


class CsvReader(FileReader):
    format_name = "csv"

    def rows(self) -> Iterator[SourceRow]:
        with self.open_text(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            columns = self._columns(header)
            width = len(header or ())
            first_line = reader.line_num + 1
            for record in reader:
                line, first_line = first_line, reader.line_num + 1
                if not any(field.strip() for field in record):
                    continue
                yield self._row(line, record, columns, width)
        self.finish()

    def _columns(self, header: list[str] | None) -> dict[str, int]:
        if not header:
            raise CsvHeaderError(f"{self.label}: empty file, a header row is required")
        names = [name.strip().lower().lstrip("\ufeff") for name in header]
        missing = [name for name in REQUIRED_COLUMNS if name not in names]
        if missing:
            raise CsvHeaderError(
                f"{self.label}: header lacks {', '.join(missing)} (columns: {', '.join(COLUMNS)})"
            )
        unknown = sorted(set(names) - set(COLUMNS) - {""})
        if unknown:
            logger.warning("%s: ignoring unknown columns %s", self.label, ", ".join(unknown))
        return {name: names.index(name) for name in COLUMNS if name in names}

    def _row(self, line: int, record: list[str], columns: dict[str, int], width: int) -> SourceRow:
        location = self.location(line)
        if len(record) != width:
            raw = ",".join(record)
            return SourceRow.rejected(location, f"{len(record)} fields, header has {width}", raw)
        fields = {name: record[index].strip() for name, index in columns.items()}
        return track_row(location, fields, {"source": "import:csv"}, ",".join(record))
