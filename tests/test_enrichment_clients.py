"""Source clients against local fakes that answer like MusicBrainz, Deezer and Spotify."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from scrapers.enrichment.breaker import OPEN, CircuitBreaker
from scrapers.enrichment.client import SourceRequestError, SourceUnavailableError, parse_retry_after
from scrapers.enrichment.config import EnrichmentConfig
from scrapers.enrichment.deezer import DeezerClient
from scrapers.enrichment.musicbrainz import MusicBrainzClient, lucene_query
from scrapers.enrichment.ratelimit import RateLimiter
from scrapers.enrichment.spotify import SpotifyClient
from scrapers.settings_check import project_settings
from tests.fakes.fixtures import SPOTIFY_SECRET, TEST_RATE, Fakes
from tests.fakes.sources import (
    DEEZER_QUOTA,
    MB_THROTTLED,
    SPOTIFY_EXPIRED,
    FakeDeezer,
    RecordedAnswers,
)


def test_musicbrainz_isrc_lookup_reads_recordings_and_their_isrcs(fakes: Fakes) -> None:
    client = MusicBrainzClient(fakes.config())
    [candidate] = client.lookup_isrc("GBAYE2600001")
    assert candidate.values == {
        "isrc": "GBAYE2600001",
        "musicbrainz_id": "00000000-0000-4000-8000-000000000001",
        "duration_ms": 181_000,
        "release_date": "2021-05-14",
    }
    assert (candidate.artist, candidate.title) == ("Deadmau5", "Strobe")
    [request] = fakes.musicbrainz.requests
    assert request.path == "/ws/2/isrc/GBAYE2600001"
    assert request.query["fmt"] == "json"
    assert "(" in request.headers["User-Agent"], "MusicBrainz needs contact details in the UA"


def test_musicbrainz_unknown_isrc_is_a_404_and_not_an_error(fakes: Fakes) -> None:
    client = MusicBrainzClient(fakes.config())
    assert client.lookup_isrc("USXXX9999999") == []
    assert len(fakes.musicbrainz.requests) == 1, "404 is an answer: no retry"
    assert client.breaker.state == "closed"


def test_musicbrainz_search_takes_isrcs_plural_and_refuses_tunecore_codes(fakes: Fakes) -> None:
    client = MusicBrainzClient(fakes.config())
    [strobe] = client.search("Deadmau5", "Strobe")
    assert strobe.values["isrc"] == "GBAYE2600001"
    [indie] = client.search("Indie Act", "Bedroom Tune")
    assert "isrc" not in indie.values
    assert indie.rejected[0]["value"] == "TCAAB2312345"
    assert "TuneCore" in indie.rejected[0]["reason"]
    query = fakes.musicbrainz.requests[0].query["query"]
    assert query == 'recording:"Strobe" AND artist:"Deadmau5"'


def test_musicbrainz_search_names_every_primary_artist_and_no_featured_credit(
    fakes: Fakes,
) -> None:
    """Issue 15 item 4: before, the phrase "Queen & David Bowie" and the "(feat. X)" were sent."""
    client = MusicBrainzClient(fakes.config())
    assert client.search("Queen & David Bowie", "Under Pressure (feat. Freddie)") == []
    assert fakes.musicbrainz.requests[0].query["query"] == (
        'recording:"Under Pressure" AND artist:"Queen" AND artist:"David Bowie"'
    )


def test_musicbrainz_reads_video_disambiguation_and_every_isrc() -> None:
    """Recorded answer (picard's ws_data) plus ISRCs: the lookup's own ISRC is the one kept."""
    video = {
        "id": "370889ee-7a70-4d0a-8f4d-e514e0494d7e",
        "title": "The Enemy",
        "length": 218000,
        "video": True,
        "disambiguation": "official music video",
        "artist-credit": [{"name": "Paradise Lost", "joinphrase": ""}],
        "isrcs": ["GBAAA0800001", "GBAAA0800002", "CBAAA0800003"],
    }
    with RecordedAnswers() as server:
        server.case = {"musicbrainz": {"isrc": {"GBAAA0800002": {"recordings": [video]}}}}
        config = EnrichmentConfig.from_settings(
            project_settings({"ENRICHMENT_MUSICBRAINZ_URL": server.url}), environ={}
        )
        [found] = MusicBrainzClient(config).lookup_isrc("GBAAA0800002")
    assert found.video is True
    assert found.disambiguation == "official music video"
    assert found.isrcs == ("GBAAA0800001", "GBAAA0800002")
    assert found.values["isrc"] == "GBAAA0800002"
    assert found.rejected[0]["value"] == "CBAAA0800003"


def test_lucene_query_escapes_quotes_and_searches_every_primary_artist() -> None:
    assert lucene_query('A "B" & C, D', 'Say "Hi"') == (
        'recording:"Say \\"Hi\\"" AND artist:"A \\"B\\"" AND artist:"C" AND artist:"D"'
    )


def test_musicbrainz_503_throttling_is_retried_after_retry_after(fakes: Fakes) -> None:
    fakes.musicbrainz.script(503, MB_THROTTLED, headers={"Retry-After": "1"}, times=2)
    client = MusicBrainzClient(fakes.config(max_attempts=4))
    started = time.monotonic()
    [candidate] = client.lookup_isrc("GBAYE2600002")
    assert candidate.title == "Opus"
    times = [request.at for request in fakes.musicbrainz.requests]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.95 and times[2] - times[1] >= 0.95, "Retry-After honoured"
    assert time.monotonic() - started < 4


def test_no_retry_on_other_4xx(fakes: Fakes) -> None:
    fakes.musicbrainz.script(400, {"error": "Invalid query"})
    client = MusicBrainzClient(fakes.config())
    with pytest.raises(SourceRequestError, match="HTTP 400"):
        client.search("Deadmau5", "Strobe")
    assert len(fakes.musicbrainz.requests) == 1


def test_5xx_retried_with_exponential_backoff_then_gives_up(fakes: Fakes) -> None:
    fakes.musicbrainz.script(502, {"error": "bad gateway"}, times=3)
    client = MusicBrainzClient(fakes.config(max_attempts=3, backoff_base=0.2))
    with pytest.raises(SourceUnavailableError, match="after 3 attempts"):
        client.lookup_isrc("GBAYE2600001")
    times = [request.at for request in fakes.musicbrainz.requests]
    assert times[1] - times[0] >= 0.19 and times[2] - times[1] >= 0.39


def test_rate_limiter_spaces_requests_across_threads(fakes: Fakes) -> None:
    """Eight threads, twelve requests each: the fake saw them at most TEST_RATE per second."""
    client = MusicBrainzClient(fakes.config())
    isrcs = [f"GBAYE26{n:05d}" for n in (1, 2, 3)]
    # urllib's first request builds its opener and reads the proxy settings; on a loaded machine
    # that delays the first sends by more than an interval, which the fake would see as a burst.
    client.lookup_isrc("GBAYE2600099")
    started = threading.Barrier(8)

    def twelve_lookups() -> None:
        started.wait()
        for i in range(12):
            client.lookup_isrc(isrcs[i % 3])

    threads = [threading.Thread(target=twelve_lookups) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    times = sorted(request.at for request in fakes.musicbrainz.requests[1:])
    assert len(times) == 96
    interval = 1 / TEST_RATE
    # Any ten consecutive arrivals span nine intervals, give or take scheduling jitter.
    spans = [later - earlier for earlier, later in zip(times, times[9:], strict=False)]
    assert min(spans) >= 9 * interval * 0.9, "limiter let a burst through"
    assert fakes.musicbrainz.throttled == 0
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert achieved <= TEST_RATE * 1.05
    # On a loaded machine late wake-ups slow the achieved rate a little; a limiter that lost a
    # whole slot per request would be at 0.5x.
    assert achieved >= TEST_RATE * 0.65, "limiter must not be much slower than allowed"


def test_rate_limiter_hold_delays_every_later_slot() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert limiter.acquire() == 0
    assert limiter.acquire() == pytest.approx(0.5)
    limiter.hold(3.0)
    assert limiter.acquire() == pytest.approx(3.0)
    assert limiter.waited_seconds == pytest.approx(3.5)


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


def test_deezer_isrc_lookup_and_no_data_error_with_status_200(fakes: Fakes) -> None:
    client = DeezerClient(fakes.config())
    [candidate] = client.lookup_isrc("GBAYE2600003")
    assert candidate.values == {
        "isrc": "GBAYE2600003",
        "duration_ms": 183_000,
        "bpm": 123.0,
        "release_date": "2021-05-14",
    }
    assert client.lookup_isrc("USXXX9999999") == []
    assert len(fakes.deezer.requests) == 2


def test_deezer_quota_error_with_status_200_is_retried(fakes: Fakes) -> None:
    fakes.deezer.script(200, DEEZER_QUOTA, times=2)
    client = DeezerClient(fakes.config())
    [candidate] = client.lookup_isrc("GBAYE2600001")
    assert candidate.values["isrc"] == "GBAYE2600001"
    assert len(fakes.deezer.requests) == 3


def test_deezer_quota_is_kept_by_the_limiter(fakes: Fakes) -> None:
    """A quota of 10 per second: the limiter at 8/s never trips it, with room for scheduling
    jitter on a loaded machine."""
    with FakeDeezer([], quota=10, window=1.0) as deezer:
        config = fakes.config().with_source("deezer", base_url=deezer.url, rate=8.0)
        client = DeezerClient(config)
        for n in range(25):
            client.lookup_isrc(f"GBAYE26{n:05d}")
        assert deezer.quota_errors == 0
        assert len(deezer.requests) == 25


def test_deezer_search_fetches_details_only_for_the_chosen(fakes: Fakes) -> None:
    client = DeezerClient(fakes.config())
    [found] = client.search("Eric Prydz", "Opus")
    assert found.needs_details and "isrc" not in found.values
    detailed = client.details(found)
    assert detailed is not None and detailed.values["isrc"] == "GBAYE2600002"
    assert fakes.deezer.requests[0].query["q"] == 'artist:"Eric Prydz" track:"Opus"'


def test_spotify_token_is_fetched_once_and_renewed_after_401(fakes: Fakes, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    client = SpotifyClient(fakes.config())
    [first] = client.lookup_isrc("GBAYE2600001")
    assert first.values["spotify_id"] == fakes.catalogue[0].spotify_id
    client.lookup_isrc("GBAYE2600002")
    assert fakes.spotify.tokens_issued == 1
    fakes.spotify.expire_tokens()
    [third] = client.lookup_isrc("GBAYE2600003")
    assert third.values["isrc"] == "GBAYE2600003"
    assert fakes.spotify.tokens_issued == 2
    statuses = [r.method for r in fakes.spotify.requests]
    assert statuses == ["POST", "GET", "GET", "GET", "POST", "GET"]
    assert all(int(r.query.get("limit", "0")) <= 10 for r in fakes.spotify.api_requests())
    assert SPOTIFY_SECRET not in caplog.text
    assert "token-" not in caplog.text


def test_spotify_token_is_renewed_before_it_expires(fakes: Fakes) -> None:
    """A token that lives 31 s is renewed 30 s early: after a second, without meeting a 401."""
    fakes.spotify.expires_in = 31
    client = SpotifyClient(fakes.config())
    client.lookup_isrc("GBAYE2600001")
    time.sleep(1.1)
    client.lookup_isrc("GBAYE2600002")
    assert fakes.spotify.tokens_issued == 2
    assert [r.method for r in fakes.spotify.requests] == ["POST", "GET", "POST", "GET"]


def test_spotify_429_honours_retry_after(fakes: Fakes) -> None:
    client = SpotifyClient(fakes.config())
    client.lookup_isrc("GBAYE2600001")
    fakes.spotify.script(429, {"error": {"status": 429}}, headers={"Retry-After": "1"})
    started = time.monotonic()
    [candidate] = client.lookup_isrc("GBAYE2600002")
    assert candidate.values["isrc"] == "GBAYE2600002"
    assert time.monotonic() - started >= 0.95


def test_spotify_expired_twice_is_a_credentials_problem(fakes: Fakes) -> None:
    fakes.spotify.script(401, SPOTIFY_EXPIRED, times=2, path_contains="/v1/")
    client = SpotifyClient(fakes.config())
    with pytest.raises(SourceRequestError, match="credentials"):
        client.lookup_isrc("GBAYE2600001")


def test_spotify_wrong_secret_is_refused_without_leaking_it(fakes: Fakes, caplog) -> None:
    config = fakes.config()
    from dataclasses import replace

    client = SpotifyClient(replace(config, spotify_client_secret="wrong-secret-xyz"))
    with pytest.raises(SourceRequestError) as raised:
        client.lookup_isrc("GBAYE2600001")
    assert "invalid_client" in str(raised.value)
    assert "wrong-secret-xyz" not in str(raised.value) + caplog.text


def test_spotify_is_disabled_without_credentials(fakes: Fakes) -> None:
    config = fakes.config(spotify=False)
    assert config.enabled_sources() == ["musicbrainz", "deezer"]
    with pytest.raises(ValueError, match="SPOTIFY_CLIENT_ID"):
        SpotifyClient(config)


def test_circuit_breaker_opens_fails_fast_then_recovers(fakes: Fakes) -> None:
    fakes.musicbrainz.script(503, MB_THROTTLED, times=4)
    breaker = CircuitBreaker("musicbrainz", failure_threshold=2, reset_timeout=0.5)
    client = MusicBrainzClient(fakes.config(max_attempts=2, backoff_base=0.01), breaker=breaker)
    for _ in range(2):
        with pytest.raises(SourceUnavailableError):
            client.lookup_isrc("GBAYE2600001")
    assert breaker.state == OPEN
    sent = len(fakes.musicbrainz.requests)
    started = time.monotonic()
    with pytest.raises(SourceUnavailableError, match="circuit is open"):
        client.lookup_isrc("GBAYE2600001")
    assert time.monotonic() - started < 0.05, "an open circuit must fail at once"
    assert len(fakes.musicbrainz.requests) == sent, "no request while open"
    time.sleep(0.55)
    [candidate] = client.lookup_isrc("GBAYE2600001")  # half-open trial succeeds
    assert candidate.title == "Strobe"
    assert breaker.state == "closed"


def test_unreachable_source_counts_as_failure(fakes: Fakes) -> None:
    config = fakes.config(max_attempts=2, backoff_base=0.01, breaker_failures=1)
    client = MusicBrainzClient(config.with_source("musicbrainz", base_url="http://127.0.0.1:9"))
    with pytest.raises(SourceUnavailableError, match="network error"):
        client.lookup_isrc("GBAYE2600001")
    assert client.breaker.state == OPEN
