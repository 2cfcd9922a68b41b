"""JSON lines of this project's own items: a crawl's ``-O items.jsonl`` or the pipeline's spool.

Each line is one item as Scrapy's feed export writes it: a ``SetlistItem`` (``source``,
``source_id``, ...) or a ``TrackItem`` (``artist``, ``title``, ``setlist_source``, ...). Replaying
the file into another database stores the same setlists, rows and tracks. Plain track dicts in
the testing plan's shape (``artist_name``, ``track_name``) are read too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scrapers.importers.jsonstream import iter_lines
from scrapers.importers.source import FileReader, SourceRow, object_rows, track_row
from scrapers.items import SetlistItem, TrackItem, resolve_aliases

_TRACK_FIELDS = frozenset(TrackItem.fields)
_SETLIST_FIELDS = frozenset(SetlistItem.fields)


class JsonlReader(FileReader):
    format_name = "jsonl"

    def rows(self) -> Iterator[SourceRow]:
        with self.open_binary() as handle:
            yield from object_rows(iter_lines(handle), self.location, item_row)
        self.finish()


def item_row(location: str, record: dict[str, Any], raw: str) -> SourceRow:
    """The item a crawl export line holds."""
    if "source_id" in record and record.keys() <= _SETLIST_FIELDS:
        return SourceRow(location, record)
    resolve_aliases(record)
    fields = {name: value for name, value in record.items() if name in _TRACK_FIELDS}
    if fields.get("is_unknown") or fields.get("is_partial_id"):
        # "ID - ID" rows are setlist positions without a track; the writer keeps them as such.
        return SourceRow(location, fields)
    return track_row(location, fields, fields.pop("metadata", None) or {}, raw)
