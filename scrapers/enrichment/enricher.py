"""One track in, the values the sources agree on out, each with its source and confidence.

With an ISRC, every source is asked by ISRC. Without one, the sources are searched by artist +
title in order (MusicBrainz, Deezer, Spotify) until one gives a confident, unambiguous match
carrying a valid ISRC; the sources not yet asked are then asked by that ISRC to fill what the
first did not have (BPM from Deezer, the Spotify ID, the MusicBrainz recording id). Each source
is asked at most once per track, and the response cache makes a repeated track free.

A recording with several ISRCs (MusicBrainz lists reissues' codes beside the original's) takes
the one a second source knows under the same track: the next sources are asked by each ISRC (at
most ``MAX_ISRC_CONFIRMATIONS``), which also fills their fields, and the first that answers with
a resembling track confirms it. Unconfirmed, the oldest allocation stays.

A source that is down (retries exhausted, circuit open) is skipped; the track then ends
``failed`` rather than ``not_found`` when no ISRC was found, so the backfill tries it again.
A track left without an ISRC keeps why in its metadata (``not_found``: the overall reason and
each source's verdict) and is counted in ``enrichment_not_found_total{reason}``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scrapers import metrics
from scrapers.enrichment.cache import ResponseCache
from scrapers.enrichment.client import SourceClient, SourceError
from scrapers.enrichment.config import EnrichmentConfig
from scrapers.enrichment.deezer import DeezerClient
from scrapers.enrichment.matching import (
    AMBIGUOUS,
    BELOW_THRESHOLD,
    FIELDS,
    NO_CANDIDATES,
    Decision,
    Match,
    choose,
    contenders,
    ranked,
)
from scrapers.enrichment.musicbrainz import MusicBrainzClient
from scrapers.enrichment.ratelimit import SlotLimiter
from scrapers.enrichment.spotify import SpotifyClient
from scrapers.statuses import EnrichmentStatus

logger = logging.getLogger(__name__)

CLIENT_CLASSES: dict[str, type[SourceClient]] = {
    "musicbrainz": MusicBrainzClient,
    "deezer": DeezerClient,
    "spotify": SpotifyClient,
}
# Search results fetched in full to tell apart candidates that tie on name (Deezer).
MAX_DETAIL_FETCHES = 3
# ISRCs of one recording that other sources are asked about, preferred first.
MAX_ISRC_CONFIRMATIONS = 3
# Why a track has no ISRC besides the matcher's own reasons, most telling first: a source was
# down (try again later), the recording matched carries no valid ISRC (nothing to fix here).
SOURCE_DOWN, NO_ISRC = "source_down", "no_isrc"
REASONS_BY_WEIGHT = (SOURCE_DOWN, NO_ISRC, AMBIGUOUS, BELOW_THRESHOLD, NO_CANDIDATES)


@dataclass(frozen=True)
class TrackQuery:
    artist: str
    title: str
    # Values the track already has; enrichment never replaces them.
    known: dict[str, Any] = field(default_factory=dict)

    @property
    def isrc(self) -> str | None:
        return self.known.get("isrc")


@dataclass
class EnrichmentResult:
    status: EnrichmentStatus
    # Only values the track did not have, keyed by the names in ``matching.FIELDS``.
    values: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Each source's verdict when it gave no ISRC, and the overall reason (None when found).
    misses: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None

    def metadata(self) -> dict[str, Any]:
        """What goes under ``metadata["enrichment"]`` of the track."""
        return {
            "status": self.status,
            "checked_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "fields": self.provenance,
            **({"rejected_identifiers": self.rejected} if self.rejected else {}),
            **({"errors": self.errors} if self.errors else {}),
            **(
                {"not_found": {"reason": self.reason, "sources": self.misses}}
                if self.reason
                else {}
            ),
        }


class Enricher:
    def __init__(
        self,
        config: EnrichmentConfig,
        clients: list[SourceClient],
        cache: ResponseCache | None = None,
    ) -> None:
        self.config = config
        self.clients = clients
        self.cache = cache  # the clients' response cache, kept for its upkeep

    @classmethod
    def from_config(
        cls,
        config: EnrichmentConfig,
        cache: ResponseCache | None,
        limiters: Mapping[str, SlotLimiter] | None = None,
    ) -> Enricher:
        """A client per enabled source, each with its own breaker and limiter.

        ``limiters`` (by source) are shared with other workers; without one, a source's limit
        is this process's own.
        """
        limiters = limiters or {}
        clients = [
            CLIENT_CLASSES[name](config, cache=cache, limiter=limiters.get(name))
            for name in config.enabled_sources()
        ]
        return cls(config, clients, cache)

    def enrich(self, query: TrackQuery, *, refresh: bool = False) -> EnrichmentResult:
        """Never raises for a source's failure; the result says what happened."""
        result = EnrichmentResult(status=EnrichmentStatus.NOT_FOUND)
        asked: set[str] = set()
        if query.isrc is None:
            for client in self.clients:
                if client.name in asked:
                    continue
                asked.add(client.name)
                decision = self._guarded(client, result, self._search, client, query, refresh)
                if decision is None:
                    continue
                if decision.match is None:
                    result.misses.append({"source": client.name, **decision.describe()})
                    continue
                self._take(result, query, decision.match, asked, refresh)
                if "isrc" in result.values:
                    break
                summary = decision.match.candidate.summary(decision.match.confidence)
                result.misses.append({"source": client.name, "reason": NO_ISRC, "best": summary})
        isrc = query.isrc or result.values.get("isrc")
        if isrc:
            for client in self.clients:
                if client.name not in asked:
                    match = self._guarded(
                        client, result, self._by_isrc, client, query, isrc, refresh
                    )
                    if match is not None:
                        _adopt(result, query, match, "isrc")
        result.status = (
            EnrichmentStatus.ENRICHED
            if isrc
            else (EnrichmentStatus.FAILED if result.errors else EnrichmentStatus.NOT_FOUND)
        )
        metrics.ENRICHMENT_TRACKS.labels(result.status).inc()
        if not isrc:
            result.reason = _overall_reason(result.misses)
            metrics.ENRICHMENT_ISRC_NOT_FOUND.inc()
            metrics.ENRICHMENT_NOT_FOUND.labels(result.reason).inc()
            logger.warning(
                "ISRC not found for %s - %s%s",
                _printable(query.artist),
                _printable(query.title),
                f" (unavailable: {'; '.join(result.errors)})" if result.errors else "",
            )
            logger.info("No ISRC for %s: %s", _printable(query.title), result.reason)
        return result

    def _take(
        self,
        result: EnrichmentResult,
        query: TrackQuery,
        match: Match,
        asked: set[str],
        refresh: bool,
    ) -> None:
        """Adopt a search match, with the ISRC another source confirms when it has several."""
        confirmation = self._confirmation(match, query, asked, result, refresh)
        if confirmation is None:
            _adopt(result, query, match, "search")
            return
        confirmed = confirmation.candidate.values["isrc"]
        _adopt(
            result, query, Match(match.candidate.with_isrc(confirmed), match.confidence), "search"
        )
        _adopt(result, query, confirmation, "isrc")
        if result.values.get("isrc") == confirmed:
            result.provenance["isrc"]["confirmed_by"] = confirmation.candidate.source

    def _confirmation(
        self,
        match: Match,
        query: TrackQuery,
        asked: set[str],
        result: EnrichmentResult,
        refresh: bool,
    ) -> Match | None:
        """Another source's record of this track under one of the match's several ISRCs."""
        isrcs = match.candidate.isrcs
        if len(isrcs) < 2:
            return None
        for client in self.clients:
            if client.name in asked:
                continue
            asked.add(client.name)
            for isrc in isrcs[:MAX_ISRC_CONFIRMATIONS]:
                found = self._guarded(client, result, self._by_isrc, client, query, isrc, refresh)
                if found is not None and found.candidate.values.get("isrc") == isrc:
                    return found
        return None

    def _search(self, client: SourceClient, query: TrackQuery, refresh: bool) -> Decision:
        candidates = client.search(query.artist, query.title, refresh=refresh)
        duration = query.known.get("duration_ms")
        matches = ranked(query.artist, query.title, duration, candidates)
        close = contenders(matches, self.config.ambiguity_margin)
        if close and close[0].confidence >= self.config.match_threshold:
            incomplete = [m for m in close if m.candidate.needs_details][:MAX_DETAIL_FETCHES]
            if incomplete:
                complete = [client.details(m.candidate, refresh=refresh) for m in incomplete]
                rest = [m.candidate for m in matches if m not in incomplete]
                matches = ranked(
                    query.artist, query.title, duration, [c for c in complete if c] + rest
                )
        return choose(matches, self.config.match_threshold, self.config.ambiguity_margin)

    def _by_isrc(
        self, client: SourceClient, query: TrackQuery, isrc: str, refresh: bool
    ) -> Match | None:
        """The recording filed under the ISRC that best resembles the track, if it does."""
        candidates = client.lookup_isrc(isrc, refresh=refresh)
        matches = ranked(query.artist, query.title, query.known.get("duration_ms"), candidates)
        if matches and matches[0].confidence >= self.config.isrc_match_threshold:
            return matches[0]
        return None

    @staticmethod
    def _guarded(client: SourceClient, result: EnrichmentResult, call: Any, *args: Any) -> Any:
        """``call(*args)``, or None when the source is down (noted in the result)."""
        try:
            return call(*args)
        except SourceError as error:
            result.errors.append(f"{client.name}: {error}")
            result.misses.append(
                {"source": client.name, "reason": SOURCE_DOWN, "error": str(error)[:200]}
            )
            return None


def _adopt(result: EnrichmentResult, query: TrackQuery, match: Match, matched_by: str) -> None:
    """Take the match's values the track lacks; record where each came from."""
    candidate = match.candidate
    result.rejected += candidate.rejected
    for name in FIELDS:
        value = candidate.values.get(name)
        if value is None or query.known.get(name) is not None or name in result.values:
            continue
        result.values[name] = value
        result.provenance[name] = {
            "source": candidate.source,
            "source_id": candidate.source_id,
            "confidence": match.confidence,
            "matched_by": matched_by,
        }


def _overall_reason(misses: list[dict[str, Any]]) -> str:
    """The most telling of the sources' reasons (``REASONS_BY_WEIGHT``)."""
    reasons = {miss["reason"] for miss in misses}
    return next((reason for reason in REASONS_BY_WEIGHT if reason in reasons), NO_CANDIDATES)


def _printable(value: str, limit: int = 200) -> str:
    """Page text in a log line: no control characters, bounded."""
    return "".join(ch if ch.isprintable() else " " for ch in value[:limit])
