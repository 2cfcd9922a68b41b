"""MusicBrainz web service v2: no key, a User-Agent with contact details, 1 request/s.

ISRC lookup: ``GET /ws/2/isrc/{ISRC}?fmt=json`` -> ``{"isrc", "recordings": [...]}``, 404 when
unknown. Search: ``GET /ws/2/recording?query=<lucene>&fmt=json`` -> ``{"count", "recordings":
[...]}`` where each recording lists its ISRCs under ``isrcs`` (plural).
"""

from __future__ import annotations

from typing import Any

from scrapers.enrichment.client import SourceClient
from scrapers.enrichment.matching import (
    Candidate,
    build_candidate,
    text,
    valid_date,
    valid_duration_ms,
    valid_uuid,
)
from scrapers.identity import search_artists, search_title

SEARCH_LIMIT = 10


class MusicBrainzClient(SourceClient):
    name = "musicbrainz"

    def lookup_isrc(self, isrc: str, *, refresh: bool = False) -> list[Candidate]:
        answer = self.get_json(
            f"/ws/2/isrc/{isrc}", {"fmt": "json", "inc": "artists"}, refresh=refresh
        )
        if not answer.found or not isinstance(answer.body, dict):
            return []
        return _candidates(answer.body.get("recordings"), known_isrc=isrc)

    def search(self, artist: str, title: str, *, refresh: bool = False) -> list[Candidate]:
        answer = self.get_json(
            "/ws/2/recording",
            {"query": lucene_query(artist, title), "fmt": "json", "limit": str(SEARCH_LIMIT)},
            refresh=refresh,
        )
        if not answer.found or not isinstance(answer.body, dict):
            return []
        return _candidates(answer.body.get("recordings"), known_isrc=None)


def lucene_query(artist: str, title: str) -> str:
    """``recording:"T" AND artist:"A" AND artist:"B"``: every primary artist, phrase-escaped.

    The title goes without "(feat. X)" (MusicBrainz credits guests, it does not title them) and
    without a bracket naming the original version ("Strobe (Original Mix)" is "Strobe" there).
    "A & B" is searched as two artists, so a credit "B & A" or "A and B" is found too.
    """
    artists = " AND ".join(f"artist:{_phrase(name)}" for name in search_artists(artist))
    return f"recording:{_phrase(search_title(title))} AND {artists}"


def _phrase(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _candidates(recordings: Any, known_isrc: str | None) -> list[Candidate]:
    if not isinstance(recordings, list):
        return []
    candidates = []
    for recording in recordings[: SEARCH_LIMIT * 5]:
        if not isinstance(recording, dict):
            continue
        mbid = valid_uuid(recording.get("id"))
        if mbid is None:
            continue
        raw_isrcs = recording.get("isrcs") if isinstance(recording.get("isrcs"), list) else []
        candidate = build_candidate(
            "musicbrainz",
            mbid,
            recording.get("title"),
            _credit_text(recording.get("artist-credit")),
            [known_isrc, *raw_isrcs],
            musicbrainz_id=mbid,
            duration_ms=valid_duration_ms(recording.get("length")),
            release_date=valid_date(recording.get("first-release-date")),
            video=recording.get("video") is True,
            disambiguation=recording.get("disambiguation"),
        )
        # Looked up by one of its ISRCs, the recording is known under that one.
        candidates.append(
            candidate.with_isrc(known_isrc) if known_isrc in candidate.isrcs else candidate
        )
    return candidates


def _credit_text(credit: Any) -> str:
    """ "A & B feat. C" from MusicBrainz's artist-credit list (name + joinphrase)."""
    if not isinstance(credit, list):
        return ""
    parts = []
    for entry in credit[:20]:
        if isinstance(entry, dict):
            parts.append(text(entry.get("name"), 200) + text(entry.get("joinphrase"), 20))
    return "".join(parts).strip()
