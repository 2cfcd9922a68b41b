"""The tiers of track resolution, pure: no database, no I/O.

A batch's candidates (stored tracks any of its items could match) are added first, oldest
first; then each item is resolved in order: ISRC, then Spotify ID, then the Koito lookup of raw
spellings, then the title key, else a new track. Items of the same batch resolve against each
other too, which is the in-batch dedupe. Identifier conflicts follow ``conflict_policy.decide``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scrapers.db.write import merge
from scrapers.db.write.conflict_policy import Conflict, decide
from scrapers.db.write.ids import id_stream
from scrapers.db.write.records import TrackRecord
from scrapers.metrics import MatchTier


@dataclass
class Track:
    """A track as the batch sees it: fetched from the database or created by the batch."""

    id: str
    isrc: str | None
    spotify_id: str | None
    title_key: str | None
    is_new: bool = False
    source: TrackRecord | None = None  # the item that created it (new) or filled its key
    values: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    enrichment_status: str | None = None
    changed: bool = False

    def contradicts(self, record: TrackRecord) -> bool:
        """A different recording: it holds another ISRC or Spotify ID than the item."""
        return bool(
            (record.isrc and self.isrc and record.isrc != self.isrc)
            or (record.spotify_id and self.spotify_id and record.spotify_id != self.spotify_id)
        )

    def absorb(self, record: TrackRecord) -> None:
        """The merge rule (``merge``) within a batch: what the batch will write onto the row."""
        before = (self.values, self.metadata, self.enrichment_status)
        merged = merge.merge(
            {**self.values, "metadata": self.metadata, "enrichment_status": self.enrichment_status},
            {
                **record.values,
                "metadata": record.metadata,
                "enrichment_status": record.enrichment_status,
            },
        )
        self.metadata = merged.pop("metadata")
        self.enrichment_status = merged.pop("enrichment_status")
        self.values = merged
        if (self.values, self.metadata, self.enrichment_status) != before:
            self.changed = True


class Resolution:
    """The tiers, run in memory over the candidates fetched for one batch."""

    def __init__(self) -> None:
        self.by_isrc: dict[str, Track] = {}
        self.by_spotify: dict[str, Track] = {}
        self.by_spelling: dict[tuple[str, str], Track] = {}
        self.by_title_key: dict[str, list[Track]] = {}
        self.tracks: dict[str, Track] = {}
        self.new_spellings: dict[tuple[str, str], str] = {}
        self.conflicts: list[Conflict] = []
        self._new_ids = id_stream()

    def add(self, track: Track) -> Track:
        track = self.tracks.setdefault(track.id, track)
        if track.isrc:
            self.by_isrc.setdefault(track.isrc, track)
        if track.spotify_id:
            self.by_spotify.setdefault(track.spotify_id, track)
        if track.title_key:
            self.by_title_key.setdefault(track.title_key, []).append(track)
        return track

    def resolve(self, record: TrackRecord) -> tuple[Track, MatchTier]:
        """The track ``record`` belongs to, and how it was matched (``NEW``: created)."""
        track, tier = self._match(record)
        if track is None:
            track = self.add(Track(next(self._new_ids), None, None, record.title_key, True, record))
        elif track.title_key is None:
            # A row from before title keys (hand inserts, old scrapers): give it one and its
            # credits, so the title tier can find it from now on.
            track.title_key, track.source, track.changed = record.title_key, record, True
            self.by_title_key.setdefault(record.title_key, []).append(track)
        for name, index in (("isrc", self.by_isrc), ("spotify_id", self.by_spotify)):
            incoming = getattr(record, name)
            owner = index.get(incoming) if incoming else None
            gains, conflict = decide(
                name, track.id, incoming, getattr(track, name), owner.id if owner else None
            )
            if gains:
                setattr(track, name, incoming)
                index[incoming] = track
                track.changed = True
            if conflict:
                self.conflicts.append(conflict)
        track.absorb(record)
        spelling = (record.artist, record.title)
        if spelling not in self.by_spelling:
            # The first track a spelling resolved to keeps it, as in track_lookup.
            self.by_spelling[spelling] = track
            self.new_spellings[spelling] = track.id
        return track, tier

    def _match(self, record: TrackRecord) -> tuple[Track | None, MatchTier]:
        if record.isrc and record.isrc in self.by_isrc:
            return self.by_isrc[record.isrc], MatchTier.ISRC
        by_spotify = self.by_spotify.get(record.spotify_id) if record.spotify_id else None
        if by_spotify and not by_spotify.contradicts(record):
            return by_spotify, MatchTier.SPOTIFY
        by_spelling = self.by_spelling.get((record.artist, record.title))
        if by_spelling and not by_spelling.contradicts(record):
            return by_spelling, MatchTier.SPELLING
        for candidate in self.by_title_key.get(record.title_key, ()):
            if not candidate.contradicts(record):
                return candidate, MatchTier.TITLE
        return None, MatchTier.NEW
