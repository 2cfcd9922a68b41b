"""Which reader fits a file: chosen from its first bytes, never from a full read.

* a ZIP archive with ``listens/`` members, or JSON whose records carry ``track_metadata``:
  ``listenbrainz``;
* a JSON array whose first record has Spotify's ``master_metadata_*``/``spotify_track_uri`` (or
  the short history's ``trackName`` + ``msPlayed``), or a document with ``"playlists": [``:
  ``spotify``;
* JSON lines whose first record is one of this project's items (``artist``/``title``,
  ``setlist_source_id``, ``source_id``, or the plan's ``artist_name``/``track_name``): ``jsonl``;
* text whose first line is a CSV header naming ``artist`` and ``title``: ``csv``.

UTF-16 and UTF-32 text is named as such, not guessed at. Messages do not repeat the file name:
the caller says which file it was.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from pathlib import Path

from scrapers.importers.csv_reader import CsvReader, header_problem
from scrapers.importers.jsonl_reader import JsonlReader
from scrapers.importers.jsonstream import JsonStreamError, iter_array
from scrapers.importers.listenbrainz import ListenBrainzReader
from scrapers.importers.source import FileReader, check_utf8
from scrapers.importers.spotify import SpotifyReader

READERS: dict[str, type[FileReader]] = {
    reader.format_name: reader
    for reader in (JsonlReader, CsvReader, ListenBrainzReader, SpotifyReader)
}
FORMATS = tuple(READERS)
HEAD_BYTES = 256 * 1024
_PLAYLISTS = re.compile(rb'"playlists"\s*:\s*\[')
_SPOTIFY_KEYS = frozenset({"master_metadata_track_name", "spotify_track_uri", "msPlayed"})
_ITEM_KEYS = frozenset(
    {"artist", "title", "setlist_source_id", "source_id", "artist_name", "track_name"}
)


class UnknownFormat(ValueError):
    """No reader recognises the file; the message says what was seen."""


def detect_format(path: Path) -> str:
    """The format name of ``path``; raises ``UnknownFormat`` when none fits."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(name.startswith("listens/") for name in archive.namelist()):
                return "listenbrainz"
        raise UnknownFormat("a ZIP archive without listens/ (not a ListenBrainz export)")
    with open(path, "rb") as handle:
        head = handle.read(HEAD_BYTES)
    check_utf8(head)
    head = head.removeprefix(b"\xef\xbb\xbf")
    stripped = head.lstrip()
    if not stripped:
        raise UnknownFormat("the file is empty")
    if stripped.startswith(b"["):
        return _array_format(_first_array_record(head))
    if stripped.startswith(b"{"):
        if _PLAYLISTS.search(head):
            return "spotify"
        return _record_format(_first_line_record(stripped))
    return _csv_format(head)


def _first_array_record(head: bytes) -> object:
    text = head.decode("utf-8", errors="replace")
    try:
        return next(iter(iter_array(io.StringIO(text))), None)
    except JsonStreamError:
        return None


def _array_format(element: object) -> str:
    value = getattr(element, "value", None)
    if isinstance(value, dict):
        if "track_metadata" in value:
            return "listenbrainz"
        if value.keys() & _SPOTIFY_KEYS:
            return "spotify"
    raise UnknownFormat(
        "a JSON array, but its first record is neither a Spotify play nor a ListenBrainz listen"
    )


def _first_line_record(head: bytes) -> object:
    line = head.split(b"\n", 1)[0]
    try:
        return json.loads(line.decode("utf-8", errors="replace"))
    except json.JSONDecodeError:
        return None


def _record_format(record: object) -> str:
    if isinstance(record, dict):
        if "track_metadata" in record:
            return "listenbrainz"
        if record.keys() & _ITEM_KEYS:
            return "jsonl"
    raise UnknownFormat(
        "JSON, but its first line is neither a crawl item nor a ListenBrainz listen"
    )


def _csv_format(head: bytes) -> str:
    first_line = head.decode("utf-8", errors="replace").splitlines()[0]
    problem = header_problem(next(csv.reader([first_line]), []))
    if problem is None:
        return "csv"
    raise UnknownFormat(f"not JSON, and not a CSV file whose {problem}")
