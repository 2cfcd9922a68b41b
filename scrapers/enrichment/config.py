"""Enrichment configuration, read once from the project's Scrapy settings.

The crawl, the service, the tests and the bench all build their clients from this one object, so
a base URL or a rate set here is the one every component uses. Spotify's credentials come from the
environment only (they are secrets, never in a settings file or a log line); REDIS_URL from the
settings, which take it from the environment unless ``-s`` gives it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from scrapers.redis_url import check_redis_url
from scrapers.settings_check import InvalidSetting, listen_address, number, whole_number
from scrapers.statuses import SOURCES

MODES = ("inline", "deferred")
URL_SETTINGS = {
    "musicbrainz": "ENRICHMENT_MUSICBRAINZ_URL",
    "deezer": "ENRICHMENT_DEEZER_URL",
    "spotify": "ENRICHMENT_SPOTIFY_API_URL",
}


@dataclass(frozen=True)
class SourceConfig:
    """How to reach one source and how hard we may use it."""

    name: str
    base_url: str
    rate: float  # requests per second, sustained
    cache_ttl: float  # seconds an answer stays fresh in the response cache


@dataclass(frozen=True)
class EnrichmentConfig:
    """Built by ``from_settings`` from the project's settings (``settings_check.project_settings``
    outside a crawl): the defaults are ``scrapers/settings.py``'s, nowhere else."""

    mode: str
    user_agent: str
    sources: dict[str, SourceConfig]
    spotify_accounts_url: str
    spotify_client_id: str | None
    spotify_client_secret: str | None = field(repr=False)
    negative_cache_ttl: float
    match_threshold: float
    isrc_match_threshold: float
    ambiguity_margin: float
    max_attempts: int
    backoff_base: float
    max_retry_after: float
    timeout: float
    breaker_failures: int
    breaker_reset: float
    concurrency: int
    retry_failed_after: float
    service_host: str
    service_port: int
    service_max_connections: int
    service_request_timeout: float
    catalogue_metrics_ttl: float
    claim_lease: float
    # Where the workers' shared rate limits live: Redis when set (REDIS_URL), else PostgreSQL.
    redis_url: str | None = field(repr=False)
    redis_key_prefix: str

    @property
    def spotify_enabled(self) -> bool:
        return bool(self.spotify_client_id and self.spotify_client_secret)

    def enabled_sources(self) -> list[str]:
        """Sources in the order they are asked; Spotify only with credentials."""
        return [
            name
            for name in SOURCES
            if name in self.sources and (name != "spotify" or self.spotify_enabled)
        ]

    def with_source(self, name: str, **changes: Any) -> EnrichmentConfig:
        """A copy with one source changed (tests and the bench point sources elsewhere)."""
        sources = dict(self.sources)
        sources[name] = replace(sources[name], **changes)
        return replace(self, sources=sources)

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> EnrichmentConfig:
        """The project's settings, read with no fallback; Spotify's credentials from ``environ``
        (``os.environ`` by default): secrets never belong in a settings file."""
        environ = os.environ if environ is None else environ

        def get(name: str) -> Any:
            return settings.get(name)

        def per_source(name: str) -> dict[str, Any]:
            """``NAME_BASE`` with ``NAME`` over it, so ``-s NAME='{"deezer": 5}'`` changes one
            source (Scrapy's convention for component dicts)."""
            return {
                **_mapping(f"{name}_BASE", get(f"{name}_BASE")),
                **_mapping(name, get(name) or {}),
            }

        def rate_or_ttl(name: str, source: str, value: Any) -> float:
            rate = name == "ENRICHMENT_RATES"
            return number(f"{name}[{source!r}]", value, allow_minimum=not rate)

        def real(name: str, **bounds: Any) -> float:
            return number(name, get(name), **bounds)

        def count(name: str, minimum: int = 1, maximum: int | None = None) -> int:
            return whole_number(name, get(name), minimum=minimum, maximum=maximum)

        urls = {source: get(name) for source, name in URL_SETTINGS.items()}
        rates = per_source("ENRICHMENT_RATES")
        ttls = per_source("ENRICHMENT_CACHE_TTL")
        sources = {
            name: SourceConfig(
                name,
                str(urls[name]).rstrip("/"),
                rate_or_ttl("ENRICHMENT_RATES", name, rates[name]),
                rate_or_ttl("ENRICHMENT_CACHE_TTL", name, ttls[name]),
            )
            for name in SOURCES
        }
        config = cls(
            mode=str(get("ENRICHMENT_MODE")),
            user_agent=str(get("ENRICHMENT_USER_AGENT")),
            sources=sources,
            spotify_accounts_url=str(get("ENRICHMENT_SPOTIFY_ACCOUNTS_URL")).rstrip("/"),
            spotify_client_id=environ.get("SPOTIFY_CLIENT_ID") or None,
            spotify_client_secret=environ.get("SPOTIFY_CLIENT_SECRET") or None,
            negative_cache_ttl=real("ENRICHMENT_NEGATIVE_CACHE_TTL"),
            match_threshold=real("ENRICHMENT_MATCH_THRESHOLD", allow_minimum=False, maximum=1),
            isrc_match_threshold=real("ENRICHMENT_ISRC_MATCH_THRESHOLD", maximum=1),
            ambiguity_margin=real("ENRICHMENT_AMBIGUITY_MARGIN", maximum=1),
            max_attempts=count("ENRICHMENT_MAX_ATTEMPTS"),
            backoff_base=real("ENRICHMENT_BACKOFF_BASE"),
            max_retry_after=real("ENRICHMENT_MAX_RETRY_AFTER"),
            timeout=real("ENRICHMENT_TIMEOUT", allow_minimum=False),
            breaker_failures=count("ENRICHMENT_BREAKER_FAILURES"),
            breaker_reset=real("ENRICHMENT_BREAKER_RESET"),
            concurrency=count("ENRICHMENT_CONCURRENCY"),
            retry_failed_after=real("ENRICHMENT_RETRY_FAILED_AFTER"),
            service_host=listen_address("ENRICHMENT_SERVICE_HOST", get("ENRICHMENT_SERVICE_HOST")),
            service_port=count("ENRICHMENT_SERVICE_PORT", minimum=0, maximum=65535),
            service_max_connections=count("ENRICHMENT_SERVICE_MAX_CONNECTIONS", maximum=10_000),
            service_request_timeout=real(
                "ENRICHMENT_SERVICE_REQUEST_TIMEOUT", allow_minimum=False, maximum=3600
            ),
            catalogue_metrics_ttl=real("ENRICHMENT_CATALOGUE_METRICS_TTL", maximum=86400),
            claim_lease=real("ENRICHMENT_CLAIM_LEASE", minimum=1, maximum=7 * 86400),
            redis_url=_redis_url(settings),
            redis_key_prefix=str(get("ENRICHMENT_REDIS_KEY_PREFIX")),
        )
        config.validate()
        return config

    def validate(self) -> None:
        """Refuse a configuration that would hammer a source or never match."""
        if self.mode not in MODES:
            raise InvalidSetting("ENRICHMENT_MODE", f"one of {MODES}", self.mode)
        for source in self.sources.values():
            if source.rate <= 0:
                raise InvalidSetting(f"ENRICHMENT_RATES[{source.name!r}]", "> 0", source.rate)
            if not source.base_url.startswith(("http://", "https://")):
                raise InvalidSetting(URL_SETTINGS[source.name], "http(s)", source.base_url)
        if not 0 < self.match_threshold <= 1:
            raise InvalidSetting("ENRICHMENT_MATCH_THRESHOLD", "in (0, 1]", self.match_threshold)
        if self.max_attempts < 1:
            raise InvalidSetting("ENRICHMENT_MAX_ATTEMPTS", ">= 1", self.max_attempts)
        if self.concurrency < 1:
            raise InvalidSetting("ENRICHMENT_CONCURRENCY", ">= 1", self.concurrency)


def _mapping(name: str, value: Any) -> dict[str, Any]:
    """A dict setting, given as a dict or as JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidSetting(name, "a JSON object", value) from None
    if not isinstance(value, Mapping):
        raise InvalidSetting(name, "a mapping of source to number", value)
    return dict(value)


def _redis_url(settings: Mapping[str, Any]) -> str | None:
    """``REDIS_URL`` (``-s`` over the environment: the project settings read it), checked."""
    url = settings.get("REDIS_URL")
    return check_redis_url(str(url)) if url else None
