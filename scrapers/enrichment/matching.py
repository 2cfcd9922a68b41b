"""Choosing among a source's candidates: take the right recording, or nothing, and say why.

Candidates are scored by ``distance.score``. The best is taken only when it reaches the
threshold and no candidate naming a *different* recording (another ISRC or, without ISRCs,
another source id) comes within the ambiguity margin of it. A wrong ISRC is worse than none: it
merges two tracks for good. When nothing is taken, the ``Decision`` says why (no candidates, the
best one and its score, or which recordings tied), for the track's metadata and the metrics.

A recording often carries several ISRCs (reissues, remasters, typos). They are kept in order
of preference: codes whose country code no agency holds are refused, and of the rest the oldest
allocation comes first (the original release's code; reissues get later ones). The enricher
then prefers one that a second source confirms.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from scrapers.db.write.fields import MAX_BPM, MAX_DURATION_MS
from scrapers.enrichment.distance import (
    artist_similarity,
    duration_factor,
    stated_version,
    title_similarity,
)
from scrapers.identity import InvalidIdentifier, isrc_country_assigned, parse_isrc

# The fields enrichment may fill, in the order the README lists them.
FIELDS = ("isrc", "spotify_id", "musicbrainz_id", "duration_ms", "bpm", "release_date")
# Why a source gave no match: nothing offered, nothing close enough, or a tie between recordings.
NO_CANDIDATES, BELOW_THRESHOLD, AMBIGUOUS = "no_candidates", "below_threshold", "ambiguous"
# Rivals described in a track's metadata when a search is ambiguous.
MAX_RIVALS_SHOWN = 5


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
    # Every valid ISRC of the recording, preferred first; ``values["isrc"]`` is the first.
    isrcs: tuple[str, ...] = ()
    video: bool = False
    disambiguation: str = ""

    @property
    def identity(self) -> str:
        return self.values.get("isrc") or f"{self.source}:{self.source_id}"

    def with_isrc(self, isrc: str) -> Candidate:
        """The same recording with ``isrc`` (one of its own) as the one to store."""
        return replace(self, values={**self.values, "isrc": isrc})

    def summary(self, score: float) -> dict[str, Any]:
        """What a track's metadata says about a candidate that was not taken."""
        return compact(
            {
                "source_id": self.source_id,
                "title": self.title[:200],
                "artist": self.artist[:200],
                "isrc": self.values.get("isrc"),
                "score": score,
            }
        )


def build_candidate(
    source: str,
    source_id: str,
    title: Any,
    artist: str,
    raw_isrcs: list[Any],
    *,
    needs_details: bool = False,
    video: bool = False,
    disambiguation: Any = "",
    **values: Any,
) -> Candidate:
    """A candidate from a source's raw fields: valid ISRCs kept in preference order."""
    isrcs, rejected = valid_isrcs(source, raw_isrcs)
    return Candidate(
        source=source,
        source_id=source_id,
        title=text(title),
        artist=artist,
        values=compact({"isrc": isrcs[0] if isrcs else None, **values}),
        rejected=rejected,
        needs_details=needs_details,
        isrcs=tuple(isrcs),
        video=video,
        disambiguation=text(disambiguation, 200),
    )


@dataclass(frozen=True)
class Match:
    candidate: Candidate
    confidence: float


@dataclass(frozen=True)
class Decision:
    """A source's verdict on a track: the match, or why there is none."""

    match: Match | None
    reason: str | None = None
    best: Match | None = None
    rivals: tuple[Match, ...] = ()

    def describe(self) -> dict[str, Any]:
        """The miss as stored in the track's metadata (bounded)."""
        described: dict[str, Any] = {"reason": self.reason}
        if self.best is not None:
            described["best"] = self.best.candidate.summary(self.best.confidence)
        if self.rivals:
            described["ambiguous_between"] = [
                rival.candidate.summary(rival.confidence) for rival in self.rivals
            ]
        return described


def score(
    artist: str,
    title: str,
    duration_ms: int | None,
    candidate: Candidate,
) -> float:
    version = stated_version(candidate.disambiguation, candidate.video)
    return (
        title_similarity(title, candidate.title, version)
        * artist_similarity(artist, candidate.artist, title, candidate.title)
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


def choose(matches: list[Match], threshold: float, margin: float) -> Decision:
    """The best match when confident and unambiguous; otherwise no match, and why."""
    close = contenders(matches, margin)
    if not close:
        return Decision(None, NO_CANDIDATES)
    if close[0].confidence < threshold:
        return Decision(None, BELOW_THRESHOLD, best=close[0])
    if len(close) > 1:
        return Decision(None, AMBIGUOUS, rivals=tuple(close[:MAX_RIVALS_SHOWN]))
    return Decision(close[0])


# Validation of values from a source: anything malformed is dropped, never stored.


def valid_isrcs(source: str, raw_values: list[Any]) -> tuple[list[str], list[dict[str, str]]]:
    """The valid, distinct ISRCs, oldest allocation first, and the refused ones with the reason.

    A code whose country code no ISRC agency holds ("CB…" for "GB…") is a typo and refused.
    """
    accepted: list[str] = []
    rejected: list[dict[str, str]] = []
    for raw in raw_values:
        try:
            isrc = parse_isrc(raw)
        except InvalidIdentifier as error:
            rejected.append({"source": source, "value": str(raw)[:40], "reason": str(error)})
            continue
        if isrc and not isrc_country_assigned(isrc):
            reason = f"country code {isrc[:2]} is held by no ISRC agency: {isrc!r}"
            rejected.append({"source": source, "value": isrc, "reason": reason})
        elif isrc and isrc not in accepted:
            accepted.append(isrc)
    return sorted(accepted, key=lambda isrc: (allocation_year(isrc), isrc)), rejected


def allocation_year(isrc: str) -> int:
    """The year an ISRC was allocated (its "YY"); codes began in 1986, so 86-99 are 19YY.

    Codes allocated afterwards for older recordings use the recording's year, so anything from
    40 up is read as 19YY.
    """
    year = int(isrc[5:7])
    return 1900 + year if year >= 40 else 2000 + year


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
    """Deezer sends 0 for "unknown"; the rule is the writer's (``fields.MAX_BPM``)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return round(float(raw), 2) if 0 < raw < MAX_BPM else None


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
