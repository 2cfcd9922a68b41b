"""Choosing among a source's candidates: take the right recording, or nothing.

A candidate's score is how much it resembles the track: title similarity times artist
similarity, lowered when both durations are known and differ. The best candidate is taken only
when it reaches the threshold and no candidate naming a *different* recording (another ISRC or,
without ISRCs, another source id) comes within the ambiguity margin of it. A wrong ISRC is worse
than none: it merges two tracks for good.

Names are compared through ``scrapers.identity`` only.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from scrapers.identity import (
    InvalidIdentifier,
    artist_key,
    comparable_title,
    fold_text,
    normalized_title,
    parse_isrc,
    split_artist_credit,
)

# Durations within this many ms count as the same recording; beyond the outer bound the
# candidate is worthless, and in between its score falls linearly.
DURATION_SAME_MS = 3_000
DURATION_DIFFERENT_MS = 30_000
MAX_DURATION_MS = 24 * 3600 * 1000
# The fields enrichment may fill, in the order the README lists them.
FIELDS = ("isrc", "spotify_id", "musicbrainz_id", "duration_ms", "bpm", "release_date")


@dataclass
class Candidate:
    """One recording as a source describes it, with every value already validated."""

    source: str
    source_id: str
    title: str
    artist: str
    values: dict[str, Any] = field(default_factory=dict)
    # Raw identifiers the source sent that failed validation, for the track's metadata.
    rejected: list[dict[str, str]] = field(default_factory=list)
    # Deezer search results carry no ISRC: the full record must be fetched once chosen.
    needs_details: bool = False

    @property
    def identity(self) -> str:
        return self.values.get("isrc") or f"{self.source}:{self.source_id}"


def build_candidate(
    source: str,
    source_id: str,
    title: Any,
    artist: str,
    raw_isrcs: list[Any],
    *,
    needs_details: bool = False,
    **values: Any,
) -> Candidate:
    """A candidate from a source's raw fields: the first valid ISRC kept, invalid ones noted."""
    isrcs, rejected = valid_isrcs(source, raw_isrcs)
    return Candidate(
        source=source,
        source_id=source_id,
        title=text(title),
        artist=artist,
        values=compact({"isrc": isrcs[0] if isrcs else None, **values}),
        rejected=rejected,
        needs_details=needs_details,
    )


@dataclass(frozen=True)
class Match:
    candidate: Candidate
    confidence: float


def similarity(left: str, right: str) -> float:
    """0..1 resemblance of two folded strings."""
    left, right = fold_text(left), fold_text(right)
    if not left or not right:
        return 0.0
    return SequenceMatcher(None, left, right).ratio()


def title_similarity(wanted: str, offered: str) -> float:
    """Resemblance of two titles; "(Original Mix)" on one side only costs nothing.

    Sources disagree on whether to name the original version ("Strobe (Original Mix)" versus
    "Strobe"); every other version word still lowers the score: an extended mix is no edit.
    """
    return similarity(
        normalized_title(comparable_title(wanted)), normalized_title(comparable_title(offered))
    )


def artist_similarity(wanted: str, offered: str) -> float:
    """Whole-credit resemblance, or the share of wanted primary artists the offer credits.

    Sources list collaborators differently ("A & B" versus "A, B", featured artists in the
    credit or only in the title), so a credit naming every wanted primary artist is a full match.
    """
    wanted_names = {
        artist_key(name) for name, role in split_artist_credit(wanted) if role == "primary"
    } - {""}
    offered_names = {artist_key(name) for name, _ in split_artist_credit(offered)} - {""}
    shared = len(wanted_names & offered_names) / len(wanted_names) if wanted_names else 0.0
    return max(similarity(wanted, offered), shared)


def duration_factor(wanted_ms: int | None, offered_ms: int | None) -> float:
    if not wanted_ms or not offered_ms:
        return 1.0
    gap = abs(wanted_ms - offered_ms)
    if gap <= DURATION_SAME_MS:
        return 1.0
    return max(0.0, 1 - (gap - DURATION_SAME_MS) / (DURATION_DIFFERENT_MS - DURATION_SAME_MS))


def score(artist: str, title: str, duration_ms: int | None, candidate: Candidate) -> float:
    return (
        title_similarity(title, candidate.title)
        * artist_similarity(artist, candidate.artist)
        * duration_factor(duration_ms, candidate.values.get("duration_ms"))
    )


def ranked(
    artist: str, title: str, duration_ms: int | None, candidates: list[Candidate]
) -> list[Match]:
    """Candidates with their scores, best first."""
    matches = [Match(c, round(score(artist, title, duration_ms, c), 4)) for c in candidates]
    return sorted(matches, key=lambda match: match.confidence, reverse=True)


def contenders(matches: list[Match], margin: float) -> list[Match]:
    """The best match and every other recording scoring within ``margin`` of it."""
    if not matches:
        return []
    best = matches[0]
    return [best] + [
        match
        for match in matches[1:]
        if match.candidate.identity != best.candidate.identity
        and match.confidence >= best.confidence - margin
    ]


def choose(matches: list[Match], threshold: float, margin: float) -> Match | None:
    """The best match when confident and unambiguous, else None (nothing guessed)."""
    close = contenders(matches, margin)
    if not close or close[0].confidence < threshold or len(close) > 1:
        return None
    return close[0]


# Validation of values from a source: anything malformed is dropped, never stored.


def valid_isrcs(source: str, raw_values: list[Any]) -> tuple[list[str], list[dict[str, str]]]:
    """The valid, distinct ISRCs in order, and the refused ones with the reason."""
    accepted: list[str] = []
    rejected: list[dict[str, str]] = []
    for raw in raw_values:
        try:
            isrc = parse_isrc(raw)
        except InvalidIdentifier as error:
            rejected.append({"source": source, "value": str(raw)[:40], "reason": str(error)})
            continue
        if isrc and isrc not in accepted:
            accepted.append(isrc)
    return accepted, rejected


def valid_uuid(raw: Any) -> str | None:
    try:
        return str(uuid.UUID(str(raw)))
    except ValueError:
        return None


def valid_duration_ms(raw: Any) -> int | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return int(raw) if 0 < raw < MAX_DURATION_MS else None


def valid_bpm(raw: Any) -> float | None:
    """Deezer sends 0 for "unknown"; the column allows 0 < bpm < 1000."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return round(float(raw), 2) if 0 < raw < 1000 else None


def valid_date(raw: Any) -> str | None:
    """A full ISO date; year-only or month-only precision ("2007", "2007-03") is not a date."""
    if not isinstance(raw, str) or len(raw) != 10:
        return None
    try:
        return dt.date.fromisoformat(raw).isoformat()
    except ValueError:
        return None


def text(raw: Any, limit: int = 500) -> str:
    """An untrusted string field, bounded."""
    return raw[:limit] if isinstance(raw, str) else ""


def compact(values: dict[str, Any]) -> dict[str, Any]:
    """Only the fields that have a value."""
    return {name: value for name, value in values.items() if value is not None}
