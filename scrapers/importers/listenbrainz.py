"""ListenBrainz listens exports.

A listen is ``{"listened_at", "recording_msid", "track_metadata": {"artist_name", "track_name",
"release_name", "additional_info": {...}, "mbid_mapping": {...}}}``. ``additional_info`` may carry
``isrc``, ``spotify_id`` (an open.spotify.com track URL), ``recording_mbid``, ``duration_ms`` or
``duration`` (seconds); ``mbid_mapping`` holds ListenBrainz's own match (``recording_mbid``,
``release_mbid``, ``artist_mbids``). Three containers are read:

* JSON lines, one listen per line (the files inside the current export);
* the export ZIP itself, whose ``listens/<year>/<month>.jsonl`` members are read in turn;
* a JSON array of listens (the older single-file export).

Listens repeat the same recording; the batch writer folds them into one track each.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from typing import IO, Any

from scrapers.importers.jsonstream import ArrayElement, iter_array, iter_lines
from scrapers.importers.source import (
    FileReader,
    SourceRow,
    object_rows,
    starts_with_array,
    text,
    track_row,
)


class ListenBrainzReader(FileReader):
    format_name = "listenbrainz"

    def __init__(self, path: Any) -> None:
        super().__init__(path)
        self._member: IO[bytes] | None = None
        self._members_done = 0
        self._zip_total: int | None = None

    def rows(self) -> Iterator[SourceRow]:
        if zipfile.is_zipfile(self.path):
            yield from self._zip_rows()
        elif starts_with_array(self.path):
            with self.open_text() as handle:
                yield from self._listen_rows(iter_array(handle), self.label)
        else:
            with self.open_binary() as handle:
                yield from self._listen_rows(iter_lines(handle), self.label)
        self.finish()

    def _zip_rows(self) -> Iterator[SourceRow]:
        with zipfile.ZipFile(self.path) as archive:
            members = [
                info
                for info in archive.infolist()
                if info.filename.startswith("listens/") and info.filename.endswith(".jsonl")
            ]
            self._zip_total = sum(info.file_size for info in members) or 1
            for info in sorted(members, key=lambda member: member.filename):
                with archive.open(info) as member:
                    self._member = member
                    label = f"{self.label}!{info.filename}"
                    yield from self._listen_rows(iter_lines(member), label)
                self._members_done += info.file_size
                self._member = None

    def bytes_read(self) -> int:
        if self._zip_total is None or self._finished:
            return super().bytes_read()
        inside = self._members_done + (self._member.tell() if self._member else 0)
        return int(self.total_bytes() * inside / self._zip_total)

    def _listen_rows(self, elements: Iterator[ArrayElement], label: str) -> Iterator[SourceRow]:
        yield from object_rows(elements, lambda line: f"{label}:{line}", listen_row)


def listen_row(location: str, listen: dict[str, Any], raw: str) -> SourceRow:
    metadata = listen.get("track_metadata")
    if not isinstance(metadata, dict):
        return SourceRow.rejected(location, "no track_metadata object", raw)
    info = _object(metadata.get("additional_info"))
    mapping = _object(metadata.get("mbid_mapping"))
    duration = info.get("duration_ms")
    if duration is None and isinstance(info.get("duration"), int | float):
        duration = round(info["duration"] * 1000)
    fields = {
        "artist": metadata.get("artist_name"),
        "title": metadata.get("track_name"),
        "isrc": info.get("isrc"),
        "spotify_id": info.get("spotify_id"),
        "musicbrainz_id": info.get("recording_mbid") or mapping.get("recording_mbid"),
        "duration_ms": duration,
    }
    extra = {
        "source": "import:listenbrainz",
        "release_name": text(metadata.get("release_name")),
        "recording_msid": text(listen.get("recording_msid") or info.get("recording_msid")),
        "release_mbid": text(info.get("release_mbid") or mapping.get("release_mbid")),
        "artist_mbids": info.get("artist_mbids") or mapping.get("artist_mbids"),
    }
    return track_row(location, fields, extra, raw)


def _object(value: Any) -> dict:
    return value if isinstance(value, dict) else {}
