"""Playlists out: a setlist, a track's "played after" list or a built path as JSPF, M3U8 or CSV.

* JSPF is XSPF written as JSON, ListenBrainz's playlist format: ``{"playlist": {"title",
  "creator", "date", "track": [...]}}``; each track has ``title``, ``creator``, ``duration``
  (ms, when known) and ``identifier``, a list of URIs (the MusicBrainz recording URI, which
  ListenBrainz reads and requires of every track it imports, and the Spotify track URL), and the
  ISRC and Spotify ID in ListenBrainz's track extension (``additional_metadata``).
* M3U8: ``#EXTM3U``, then per track ``#EXTINF:SECONDS,ARTIST - TITLE`` and its location: the
  Spotify URI, else the MusicBrainz recording URL, else a Spotify search for it.
* CSV: one row per track with every identifier, BPM, key and the setlist count where there is one.
  Artists and titles come from crawled pages: a text cell a spreadsheet would read as a formula
  (it starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, OWASP's list) is
  written with a leading ``'``, which spreadsheets show as text and do not display.

Only identified tracks go in: an unknown row ("ID - ID") has nothing to play.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import quote

from scrapers.db.explore import Neighbour, Path, Setlist, TrackRef

MUSICBRAINZ_RECORDING = "https://musicbrainz.org/recording/"
SPOTIFY_TRACK = "https://open.spotify.com/track/"
SPOTIFY_SEARCH = "https://open.spotify.com/search/"
JSPF_TRACK_EXTENSION = "https://musicbrainz.org/doc/jspf#track"
CREATOR = "tracklists-catalogue"
# First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = (
    "position",
    "artist",
    "title",
    "isrc",
    "spotify_id",
    "musicbrainz_id",
    "duration_ms",
    "bpm",
    "key",
    "sets",
)


class Format(StrEnum):
    JSPF = "jspf"
    M3U = "m3u"
    CSV = "csv"


# What a download of each format is called and sent as.
MEDIA_TYPES = {
    Format.JSPF: ("jspf", "application/jspf+json"),
    Format.M3U: ("m3u8", "audio/x-mpegurl"),
    Format.CSV: ("csv", "text/csv"),
}


@dataclass(frozen=True)
class Entry:
    """A track of a playlist; ``sets`` counts the setlists behind it where the list has one."""

    track: TrackRef
    sets: int | None = None


@dataclass(frozen=True)
class Playlist:
    title: str
    entries: tuple[Entry, ...]
    annotation: str | None = None


def from_setlist(found: Setlist) -> Playlist:
    """A setlist's identified rows in page order ("w/" rows and mashup parts included)."""
    summary = found.setlist
    djs = ", ".join(summary.djs)
    title = summary.title or f"{djs} {summary.set_date or ''}".strip() or summary.source_id
    entries = tuple(Entry(row.track) for row in found.rows if row.track is not None)
    unknown = sum(1 for row in found.rows if row.track is None)
    note = f"{unknown} unknown row(s) left out" if unknown else None
    return Playlist(title, entries, " ; ".join(filter(None, [summary.url, note])) or None)


def from_followers(track: TrackRef, followers: Iterable[Neighbour]) -> Playlist:
    """What DJs play after ``track``, most played first, the track itself leading."""
    entries = (Entry(track), *(Entry(n.track, n.plays.sets) for n in followers))
    return Playlist(f"Played after {track.artist} - {track.title}", entries)


def from_path(path: Path) -> Playlist:
    """A built path, first step to last."""
    first, last = path.steps[0].track, path.steps[-1].track
    title = f"{first.artist} - {first.title} to {last.artist} - {last.title}"
    return Playlist(title, tuple(Entry(step.track, step.sets) for step in path.steps))


def render(playlist: Playlist, output: Format, now: datetime | None = None) -> str:
    """The playlist as text in ``output``'s format."""
    if output is Format.JSPF:
        return json.dumps(jspf(playlist, now), indent=2, ensure_ascii=False) + "\n"
    if output is Format.M3U:
        return m3u(playlist)
    return csv_text(playlist)


def jspf(playlist: Playlist, now: datetime | None = None) -> dict:
    """The JSPF document of ``playlist``."""
    created = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    body: dict = {"title": playlist.title, "creator": CREATOR, "date": created}
    if playlist.annotation:
        body["annotation"] = playlist.annotation
    body["track"] = [_jspf_track(entry.track) for entry in playlist.entries]
    return {"playlist": body}


def _jspf_track(track: TrackRef) -> dict:
    item: dict = {"title": track.title, "creator": track.artist}
    if track.duration_ms:
        item["duration"] = track.duration_ms
    identifiers = []
    if track.musicbrainz_id:
        identifiers.append(MUSICBRAINZ_RECORDING + track.musicbrainz_id)
    if track.spotify_id:
        identifiers.append(SPOTIFY_TRACK + track.spotify_id)
    item["identifier"] = identifiers
    extra = {key: getattr(track, key) for key in ("isrc", "spotify_id") if getattr(track, key)}
    if extra:
        item["extension"] = {JSPF_TRACK_EXTENSION: {"additional_metadata": extra}}
    return item


def m3u(playlist: Playlist) -> str:
    """The M3U8 text of ``playlist``."""
    lines = ["#EXTM3U", f"#PLAYLIST:{_one_line(playlist.title)}"]
    for entry in playlist.entries:
        track = entry.track
        seconds = round(track.duration_ms / 1000) if track.duration_ms else -1
        lines.append(f"#EXTINF:{seconds},{_one_line(f'{track.artist} - {track.title}')}")
        lines.append(location(track))
    return "\n".join(lines) + "\n"


def location(track: TrackRef) -> str:
    """Where a player finds ``track``: Spotify, else MusicBrainz, else a Spotify search."""
    if track.spotify_id:
        return f"spotify:track:{track.spotify_id}"
    if track.musicbrainz_id:
        return MUSICBRAINZ_RECORDING + track.musicbrainz_id
    return SPOTIFY_SEARCH + quote(f"{track.artist} {track.title}", safe="")


def csv_text(playlist: Playlist) -> str:
    """The CSV text of ``playlist``, with a header row."""
    buffer = io.StringIO()
    # RFC 4180 line ends: the writer then also quotes a cell holding a bare CR or LF.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for position, entry in enumerate(playlist.entries, start=1):
        track = entry.track
        writer.writerow(
            [
                position,
                spreadsheet_text(track.artist),
                spreadsheet_text(track.title),
                spreadsheet_text(track.isrc or ""),
                spreadsheet_text(track.spotify_id or ""),
                spreadsheet_text(track.musicbrainz_id or ""),
                track.duration_ms or "",
                "" if track.bpm is None else f"{track.bpm:g}",
                spreadsheet_text(track.key or ""),
                "" if entry.sets is None else entry.sets,
            ]
        )
    return buffer.getvalue()


def spreadsheet_text(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs as a formula: a leading ``'`` where it starts
    like one (a title from a page is untrusted), unchanged otherwise."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _one_line(text: str) -> str:
    """M3U is line-based: a title from a page must not start a line of its own."""
    return " ".join(text.split())
