"""Enrichment configuration, read once from Scrapy settings (or any mapping) and the environment.

The crawl, the service, the tests and the bench all build their clients from this one object, so
a base URL or a rate set here is the one every component uses. Spotify credentials come from the
environment only: they are secrets and never belong in a settings file or a log line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from scrapers import settings as project_settings

SOURCES = ("musicbrainz", "deezer", "spotify")
MODES = ("inline", "deferred")


@dataclass(frozen=True)
class SourceConfig:
    """How to reach one source and how hard we may use it."""

    name: str
    base_url: str
    rate: float  # requests per second, sustained
    cache_ttl: float  # seconds an answer stays fresh in the response cache


@dataclass(frozen=True)
class EnrichmentConfig:
    mode: str = project_settings.ENRICHMENT_MODE
    user_agent: str = project_settings.ENRICHMENT_USER_AGENT
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    spotify_accounts_url: str = project_settings.ENRICHMENT_SPOTIFY_ACCOUNTS_URL
    spotify_client_id: str | None = None
    spotify_client_secret: str | None = field(default=None, repr=False)
    negative_cache_ttl: float = project_settings.ENRICHMENT_NEGATIVE_CACHE_TTL
    match_threshold: float = project_settings.ENRICHMENT_MATCH_THRESHOLD
    isrc_match_threshold: float = project_settings.ENRICHMENT_ISRC_MATCH_THRESHOLD
    ambiguity_margin: float = project_settings.ENRICHMENT_AMBIGUITY_MARGIN
    max_attempts: int = project_settings.ENRICHMENT_MAX_ATTEMPTS
    backoff_base: float = project_settings.ENRICHMENT_BACKOFF_BASE
    max_retry_after: float = project_settings.ENRICHMENT_MAX_RETRY_AFTER
    timeout: float = project_settings.ENRICHMENT_TIMEOUT
    breaker_failures: int = project_settings.ENRICHMENT_BREAKER_FAILURES
    breaker_reset: float = project_settings.ENRICHMENT_BREAKER_RESET
    concurrency: int = project_settings.ENRICHMENT_CONCURRENCY
    retry_failed_after: float = project_settings.ENRICHMENT_RETRY_FAILED_AFTER
    service_host: str = project_settings.ENRICHMENT_SERVICE_HOST
    service_port: int = project_settings.ENRICHMENT_SERVICE_PORT

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
        cls, settings: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> EnrichmentConfig:
        """Scrapy settings (or a plain mapping) over the project defaults; secrets from env."""
        settings = settings or {}
        environ = os.environ if environ is None else environ

        def get(name: str) -> Any:
            value = settings.get(name)
            default = getattr(project_settings, name)
            if isinstance(default, dict) and isinstance(value, str):
                value = json.loads(value)  # "-s ENRICHMENT_RATES='{...}'" on a command line
            return default if value is None else value

        urls = {
            "musicbrainz": get("ENRICHMENT_MUSICBRAINZ_URL"),
            "deezer": get("ENRICHMENT_DEEZER_URL"),
            "spotify": get("ENRICHMENT_SPOTIFY_API_URL"),
        }
        rates = {**project_settings.ENRICHMENT_RATES, **dict(get("ENRICHMENT_RATES"))}
        ttls = {**project_settings.ENRICHMENT_CACHE_TTL, **dict(get("ENRICHMENT_CACHE_TTL"))}
        sources = {
            name: SourceConfig(
                name, str(urls[name]).rstrip("/"), float(rates[name]), float(ttls[name])
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
            negative_cache_ttl=float(get("ENRICHMENT_NEGATIVE_CACHE_TTL")),
            match_threshold=float(get("ENRICHMENT_MATCH_THRESHOLD")),
            isrc_match_threshold=float(get("ENRICHMENT_ISRC_MATCH_THRESHOLD")),
            ambiguity_margin=float(get("ENRICHMENT_AMBIGUITY_MARGIN")),
            max_attempts=int(get("ENRICHMENT_MAX_ATTEMPTS")),
            backoff_base=float(get("ENRICHMENT_BACKOFF_BASE")),
            max_retry_after=float(get("ENRICHMENT_MAX_RETRY_AFTER")),
            timeout=float(get("ENRICHMENT_TIMEOUT")),
            breaker_failures=int(get("ENRICHMENT_BREAKER_FAILURES")),
            breaker_reset=float(get("ENRICHMENT_BREAKER_RESET")),
            concurrency=int(get("ENRICHMENT_CONCURRENCY")),
            retry_failed_after=float(get("ENRICHMENT_RETRY_FAILED_AFTER")),
            service_host=str(get("ENRICHMENT_SERVICE_HOST")),
            service_port=int(get("ENRICHMENT_SERVICE_PORT")),
        )
        config.validate()
        return config

    def validate(self) -> None:
        """Refuse a configuration that would hammer a source or never match."""
        if self.mode not in MODES:
            raise ValueError(f"ENRICHMENT_MODE must be one of {MODES}, got {self.mode!r}")
        for source in self.sources.values():
            if source.rate <= 0:
                raise ValueError(f"ENRICHMENT_RATES[{source.name!r}] must be > 0")
            if not source.base_url.startswith(("http://", "https://")):
                raise ValueError(f"base URL of {source.name} must be http(s)")
        if not 0 < self.match_threshold <= 1:
            raise ValueError("ENRICHMENT_MATCH_THRESHOLD must be in (0, 1]")
        if self.max_attempts < 1 or self.concurrency < 1:
            raise ValueError("ENRICHMENT_MAX_ATTEMPTS and ENRICHMENT_CONCURRENCY must be >= 1")
