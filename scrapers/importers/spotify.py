"""Spotify account-data exports.

* Extended streaming history (``Streaming_History_Audio_*.json``): one JSON array of plays, each
  with ``master_metadata_track_name``, ``master_metadata_album_artist_name``,
  ``master_metadata_album_album_name`` and ``spotify_track_uri``. Podcast episodes and audiobook
  chapters (``episode_name``, ``audiobook_title``) are plays too but not tracks: they are counted
  as skipped. The older short history (``StreamingHistory*.json``: ``artistName``,
  ``trackName``) is read the same way.
* Playlists (``Playlist1.json``): ``{"playlists": [{"name", "items": [{"track": {"trackName",
  "artistName", "albumName", "trackUri"}, "episode", "localTrack"}]}]}``. A local file's
  ``spotify:local:artist:album:title:seconds`` URI supplies its names.

Both are single JSON documents, read element by element (``jsonstream``) in bounded memory.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

from scrapers.importers.jsonstream import ArrayElement, JsonStreamError, iter_array
from scrapers.importers.source import (
    FileReader,
    SourceRow,
    object_rows,
    starts_with_array,
    text,
    track_row,
)

_PLAYLISTS = re.compile(r'"playlists"\s*:\s*\[')
_PLAYLIST_ITEMS = re.compile(r'"items"\s*:\s*\[')
# A playlist holds at most 10,000 items; this bounds one decoded playlist with room to spare.
MAX_PLAYLIST_CHARS = 64 << 20


class SpotifyReader(FileReader):
    format_name = "spotify"

    def rows(self) -> Iterator[SourceRow]:
        with self.open_text() as handle:
            if starts_with_array(self.path):
                yield from object_rows(iter_array(handle), self.location, history_row)
            else:
                yield from self._playlist_rows(
                    iter_array(handle, _PLAYLISTS, max_element_chars=MAX_PLAYLIST_CHARS)
                )
        self.finish()

    def _playlist_rows(self, playlists: Iterator[ArrayElement]) -> Iterator[SourceRow]:
        for playlist in playlists:
            if playlist.error is not None or not isinstance(playlist.value, dict):
                reason = playlist.error or "playlist is not a JSON object"
                yield SourceRow.rejected(self.location(playlist.line), reason, playlist.raw)
                continue
            name = text(playlist.value.get("name"))
            entries = iter_array(
                io.StringIO(playlist.text), _PLAYLIST_ITEMS, first_line=playlist.line
            )
            try:
                for entry in entries:
                    yield self._playlist_entry_row(entry, name)
            except JsonStreamError:
                continue  # a playlist without an "items" array holds no tracks

    def _playlist_entry_row(self, entry: ArrayElement, playlist: str | None) -> SourceRow:
        location = self.location(entry.line)
        if entry.error is not None:
            return SourceRow.rejected(location, entry.error, entry.raw)
        value = entry.value if isinstance(entry.value, dict) else {}
        track = value.get("track")
        if isinstance(track, dict):
            fields = {
                "artist": track.get("artistName"),
                "title": track.get("trackName"),
                "spotify_id": text(track.get("trackUri")),
            }
            album = text(track.get("albumName"))
        elif isinstance(value.get("localTrack"), dict):
            fields, album = _local_track(value["localTrack"])
        elif value.get("episode") or value.get("audiobook"):
            return SourceRow(location, skipped="podcast episode or audiobook, not a track")
        else:
            return SourceRow.rejected(location, "playlist item without a track", entry.text)
        extra = {"source": "import:spotify", "album": album}
        return track_row(location, fields, extra, entry.text)


def history_row(location: str, play: dict[str, Any], raw: str) -> SourceRow:
    title = play.get("master_metadata_track_name", play.get("trackName"))
    if title is None and (play.get("episode_name") or play.get("audiobook_title")):
        return SourceRow(location, skipped="podcast episode or audiobook, not a track")
    fields = {
        "artist": play.get("master_metadata_album_artist_name", play.get("artistName")),
        "title": title,
        "spotify_id": text(play.get("spotify_track_uri")),
    }
    extra = {
        "source": "import:spotify",
        "album": text(play.get("master_metadata_album_album_name")),
    }
    return track_row(location, fields, extra, raw)


def _local_track(local: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Names from ``spotify:local:<artist>:<album>:<title>:<seconds>`` (URL-encoded parts)."""
    parts = [unquote_plus(part) for part in str(local.get("uri") or "").split(":")]
    artist, album, title = [*parts[2:5], None, None, None][:3]
    return {"artist": artist, "title": title}, text(album)
