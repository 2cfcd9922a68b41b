"""What the explorer's queries return: frozen dataclasses, and one way to make them JSON.

The CLI prints them, the web app serialises them, the exports turn them into playlists: all three
read these types, never rows. ``as_json`` is the one conversion (dates as ISO text, decimals as
numbers, UUIDs as text), so the CLI's ``--json`` and the web API agree.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar


@dataclasses.dataclass(frozen=True)
class TrackRef:
    """A track as a list shows it: enough to print it, link it and put it in a playlist."""

    id: str
    artist: str
    title: str
    isrc: str | None = None
    spotify_id: str | None = None
    musicbrainz_id: str | None = None
    duration_ms: int | None = None
    bpm: float | None = None
    key: str | None = None


@dataclasses.dataclass(frozen=True)
class Plays:
    """How often something was played: distinct setlists, distinct DJs, first and last set date."""

    sets: int
    djs: int
    first_played: date | None
    last_played: date | None


@dataclasses.dataclass(frozen=True)
class Neighbour:
    """A track next to another one (after it, before it, or with it), and how often."""

    track: TrackRef
    plays: Plays


@dataclasses.dataclass(frozen=True)
class Transition:
    """``source`` then ``target``, consecutive played rows of ``plays.sets`` setlists. In JSON
    its ends are ``from`` and ``to``, the names every command and the API give them."""

    JSON_NAMES: ClassVar[dict[str, str]] = {"source": "from", "target": "to"}

    source: TrackRef
    target: TrackRef
    plays: Plays


@dataclasses.dataclass(frozen=True)
class SearchHit:
    """A track found by search; ``matched`` says how (isrc, spotify_id, title_key, text)."""

    track: TrackRef
    matched: str
    score: float
    sets: int


@dataclasses.dataclass(frozen=True)
class Credit:
    name: str
    role: str


@dataclasses.dataclass(frozen=True)
class DjCount:
    """A DJ and the number of their setlists that played something."""

    name: str
    sets: int


@dataclasses.dataclass(frozen=True)
class Neighbourhood:
    """What DJs play after a track, before it and with it, most played first."""

    followers: tuple[Neighbour, ...]
    predecessors: tuple[Neighbour, ...]
    with_tracks: tuple[Neighbour, ...]


@dataclasses.dataclass(frozen=True)
class TrackCount:
    """A track and its plays (top tracks, a DJ's most played tracks)."""

    track: TrackRef
    plays: Plays


@dataclasses.dataclass(frozen=True)
class TrackDetail:
    """One track: identifiers, metadata, credits, other versions, plays and neighbourhood."""

    track: TrackRef
    version: str | None
    label: str | None
    genre: str | None
    release_date: date | None
    credits: tuple[Credit, ...]
    other_versions: tuple[TrackCount, ...]
    plays: Plays
    neighbourhood: Neighbourhood
    top_djs: tuple[DjCount, ...]


@dataclasses.dataclass(frozen=True)
class SetlistRow:
    """One row of a setlist as the site shows it; ``track`` is None for an unknown row."""

    row_index: int
    position: int | None
    played_with_previous: bool
    mashup_part: bool
    cue_seconds: int | None
    raw_artist: str | None
    raw_title: str | None
    track: TrackRef | None


@dataclasses.dataclass(frozen=True)
class SetlistSummary:
    id: str
    source: str
    source_id: str
    url: str | None
    title: str | None
    djs: tuple[str, ...]
    event: str | None
    set_date: date | None
    genres: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Setlist:
    setlist: SetlistSummary
    rows: tuple[SetlistRow, ...]


@dataclasses.dataclass(frozen=True)
class DjDetail:
    name: str
    sets: tuple[SetlistSummary, ...]
    top_tracks: tuple[TrackCount, ...]
    top_transitions: tuple[Transition, ...]


@dataclasses.dataclass(frozen=True)
class PathStep:
    """A track of a built path; ``sets`` counts the setlists that played the step into it."""

    track: TrackRef
    sets: int | None


@dataclasses.dataclass(frozen=True)
class Path:
    """A path of played transitions from the first step to the last; when ``steps`` is empty,
    ``reason`` says why none was found."""

    steps: tuple[PathStep, ...]
    reason: str | None = None

    @property
    def found(self) -> bool:
        return bool(self.steps)


def as_json(value: Any) -> Any:
    """``value`` (dataclasses, tuples, dates, decimals, UUIDs) as plain JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = getattr(value, "JSON_NAMES", {})  # where a field's JSON name is not its own
        return {
            names.get(field.name, field.name): as_json(getattr(value, field.name))
            for field in dataclasses.fields(value)
        }
    if isinstance(value, (list, tuple)):
        return [as_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): as_json(item) for key, item in value.items()}
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value
