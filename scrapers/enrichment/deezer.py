"""Deezer public API: no key, a quota of about 50 requests per 5 seconds.

Deezer reports errors with HTTP 200 and an ``{"error": {"type", "message", "code"}}`` body:
code 4 is the quota, 700 "service busy", 800 "no data" (an unknown ISRC or id). Search results
carry no ISRC, so a chosen search result is fetched once more by id.
"""

from __future__ import annotations

from typing import Any

from scrapers.enrichment.client import Outcome, RawResponse, SourceClient
from scrapers.enrichment.matching import (
    Candidate,
    build_candidate,
    text,
    valid_bpm,
    valid_date,
    valid_duration_ms,
)
from scrapers.identity import search_artists, search_title

QUOTA_EXCEEDED, SERVICE_BUSY, NO_DATA = 4, 700, 800
KNOWN_ERROR_CODES = frozenset({4, 100, 200, 300, 500, 501, 600, 700, 800, 801, 901})
SEARCH_LIMIT = 10


class DeezerClient(SourceClient):
    name = "deezer"

    def classify(self, response: RawResponse) -> Outcome:
        code = _error_code(response.body)
        if response.status != 200 or code is None:
            return super().classify(response)
        if code in (QUOTA_EXCEEDED, SERVICE_BUSY):
            return Outcome.THROTTLED
        return Outcome.NOT_FOUND if code == NO_DATA else Outcome.REFUSED

    def status_label(self, response: RawResponse) -> str:
        code = _error_code(response.body)
        if code is None:
            return str(response.status)
        return f"error_{code}" if code in KNOWN_ERROR_CODES else "error_other"

    def lookup_isrc(self, isrc: str, *, refresh: bool = False) -> list[Candidate]:
        answer = self.get_json(f"/track/isrc:{isrc}", {}, refresh=refresh)
        found = _candidate(answer.body) if answer.found else None
        return [found] if found else []

    def search(self, artist: str, title: str, *, refresh: bool = False) -> list[Candidate]:
        # Deezer's advanced search takes one artist: the first primary one.
        main_artist = search_artists(artist)[0]
        query = f'artist:"{_quoted(main_artist)}" track:"{_quoted(search_title(title))}"'
        answer = self.get_json("/search", {"q": query, "limit": str(SEARCH_LIMIT)}, refresh=refresh)
        data = answer.body.get("data") if answer.found and isinstance(answer.body, dict) else None
        if not isinstance(data, list):
            return []
        found = (_candidate(entry, from_search=True) for entry in data[:SEARCH_LIMIT])
        return [candidate for candidate in found if candidate]

    def details(self, candidate: Candidate, *, refresh: bool = False) -> Candidate | None:
        """The full track record (with ISRC, BPM, release date) of a search result."""
        answer = self.get_json(f"/track/{candidate.source_id}", {}, refresh=refresh)
        return _candidate(answer.body) if answer.found else None


def _error_code(body: Any) -> int | None:
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return None
    code = body["error"].get("code")
    return code if isinstance(code, int) and not isinstance(code, bool) else -1


def _quoted(value: str) -> str:
    return value.replace('"', " ")


def _candidate(track: Any, *, from_search: bool = False) -> Candidate | None:
    if not isinstance(track, dict):
        return None
    track_id = track.get("id")
    if isinstance(track_id, bool) or not isinstance(track_id, int) or track_id <= 0:
        return None
    duration = track.get("duration")
    seconds = duration if isinstance(duration, int) and not isinstance(duration, bool) else 0
    return build_candidate(
        "deezer",
        str(track_id),
        track.get("title"),
        _artist_text(track),
        [track.get("isrc")],
        needs_details=from_search,
        duration_ms=valid_duration_ms(seconds * 1000),
        bpm=valid_bpm(track.get("bpm")),
        release_date=valid_date(track.get("release_date")),
    )


def _artist_text(track: dict[str, Any]) -> str:
    """Every contributor when Deezer lists them, else the main artist."""
    contributors = track.get("contributors")
    if isinstance(contributors, list):
        names = [text(c.get("name"), 200) for c in contributors[:20] if isinstance(c, dict)]
        if any(names):
            return ", ".join(name for name in names if name)
    artist = track.get("artist")
    return text(artist.get("name"), 200) if isinstance(artist, dict) else ""
