"""Pytest fixtures for enrichment tests: the three fake sources and a config pointing at them.

Rates are 20 requests/s (not production's 1/s for MusicBrainz) so the suite stays fast; the
MusicBrainz fake enforces the same rate, so a limiter that lets requests through too fast meets
503s exactly as it would in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from scrapers.enrichment.config import EnrichmentConfig
from scrapers.settings_check import project_settings
from tests.fakes.sources import FakeDeezer, FakeMusicBrainz, FakeSpotify, Recording

TEST_RATE = 20.0
SPOTIFY_ID = "fake-client"
SPOTIFY_SECRET = "fake-secret-do-not-log"


def recording(n: int, artist: str, title: str, **overrides: object) -> Recording:
    """A recording with identifiers derived from ``n`` (1..99999)."""
    values: dict[str, object] = {
        "artist": artist,
        "title": title,
        "isrc": f"GBAYE26{n:05d}",
        "duration_ms": 180_000 + n * 1000,
        "mbid": f"00000000-0000-4000-8000-{n:012d}",
        "deezer_id": 1_000_000 + n,
        "spotify_id": f"{n:022d}".replace("0", "a"),
        "bpm": 120 + n % 10,
        "release_date": "2021-05-14",
    }
    values.update(overrides)
    return Recording(**values)  # type: ignore[arg-type]


def sample_catalogue() -> list[Recording]:
    return [
        recording(1, "Deadmau5", "Strobe"),
        recording(2, "Eric Prydz", "Opus"),
        recording(3, "Avicii", "Levels"),
        # Two different recordings that no name or duration can tell apart.
        recording(4, "Twin Artist", "Same Name", duration_ms=200_000),
        recording(5, "Twin Artist", "Same Name", duration_ms=200_000),
        # MusicBrainz files a TuneCore code as its only "ISRC": it must be refused.
        recording(6, "Indie Act", "Bedroom Tune", isrc=None, other_isrcs=["TCAAB2312345"]),
    ]


@dataclass
class Fakes:
    musicbrainz: FakeMusicBrainz
    deezer: FakeDeezer
    spotify: FakeSpotify
    catalogue: list[Recording]

    def config(self, *, spotify: bool = True, **changes: object) -> EnrichmentConfig:
        """Project defaults, every source pointed at its fake, fast rates and short backoffs."""
        environ = {"SPOTIFY_CLIENT_ID": SPOTIFY_ID, "SPOTIFY_CLIENT_SECRET": SPOTIFY_SECRET}
        config = EnrichmentConfig.from_settings(
            project_settings(
                {
                    "ENRICHMENT_MUSICBRAINZ_URL": self.musicbrainz.url,
                    "ENRICHMENT_DEEZER_URL": self.deezer.url,
                    "ENRICHMENT_SPOTIFY_API_URL": self.spotify.url,
                    "ENRICHMENT_SPOTIFY_ACCOUNTS_URL": self.spotify.url,
                    "ENRICHMENT_RATES": {
                        "musicbrainz": TEST_RATE,
                        "deezer": TEST_RATE,
                        "spotify": TEST_RATE,
                    },
                    "ENRICHMENT_BACKOFF_BASE": 0.05,
                    "ENRICHMENT_MAX_RETRY_AFTER": 2.0,
                    "ENRICHMENT_TIMEOUT": 5.0,
                }
            ),
            environ=environ if spotify else {},
        )
        return replace(config, **changes)  # type: ignore[arg-type]

    def all_api_requests(self) -> int:
        return sum(
            len(fake.api_requests()) for fake in (self.musicbrainz, self.deezer, self.spotify)
        )


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    catalogue = sample_catalogue()
    with (
        FakeMusicBrainz(catalogue, rate=TEST_RATE) as musicbrainz,
        FakeDeezer(catalogue) as deezer,
        FakeSpotify(catalogue, client_id=SPOTIFY_ID, client_secret=SPOTIFY_SECRET) as spotify,
    ):
        yield Fakes(musicbrainz, deezer, spotify, catalogue)
