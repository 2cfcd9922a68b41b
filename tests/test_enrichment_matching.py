"""Matching and the enricher: the right recording or nothing, provenance on every value, cache."""

from __future__ import annotations

import logging

import pytest

from scrapers.enrichment.cache import ResponseCache
from scrapers.enrichment.deezer import DeezerClient
from scrapers.enrichment.enricher import ENRICHED, FAILED, NOT_FOUND, Enricher, TrackQuery
from scrapers.enrichment.matching import Candidate, choose, ranked, title_similarity
from scrapers.enrichment.musicbrainz import lucene_query
from scrapers.enrichment.spotify import SpotifyClient
from tests.fakes.fixtures import Fakes
from tests.fakes.sources import MB_THROTTLED


def candidate(source_id: str, artist: str, title: str, **values: object) -> Candidate:
    return Candidate("musicbrainz", source_id, title, artist, dict(values))


def test_choose_takes_the_clear_winner() -> None:
    matches = ranked(
        "Deadmau5",
        "Strobe",
        None,
        [
            candidate("1", "deadmau5", "Strobe", isrc="GBAYE2600001"),
            candidate("2", "Deadmau5", "Ghosts n Stuff", isrc="GBAYE2600009"),
        ],
    )
    chosen = choose(matches, threshold=0.8, margin=0.05)
    assert chosen is not None and chosen.candidate.source_id == "1"
    assert chosen.confidence == 1.0


def test_choose_refuses_below_threshold() -> None:
    matches = ranked("Deadmau5", "Strobe", None, [candidate("1", "Kaskade", "Strobe Lights")])
    assert matches[0].confidence < 0.8
    assert choose(matches, threshold=0.8, margin=0.05) is None


def test_choose_refuses_two_different_recordings_that_tie() -> None:
    matches = ranked(
        "Twin Artist",
        "Same Name",
        None,
        [
            candidate("1", "Twin Artist", "Same Name", isrc="GBAYE2600004"),
            candidate("2", "Twin Artist", "Same Name", isrc="GBAYE2600005"),
        ],
    )
    assert choose(matches, threshold=0.8, margin=0.05) is None


def test_same_isrc_twice_is_not_ambiguous() -> None:
    """One ISRC on a single and an album: the same recording, so no doubt."""
    matches = ranked(
        "Avicii",
        "Levels",
        None,
        [
            candidate("1", "Avicii", "Levels", isrc="GBAYE2600003"),
            candidate("2", "Avicii", "Levels", isrc="GBAYE2600003"),
        ],
    )
    assert choose(matches, threshold=0.8, margin=0.05) is not None


def test_duration_breaks_a_tie_between_versions() -> None:
    matches = ranked(
        "Eric Prydz",
        "Opus",
        540_000,
        [
            candidate("1", "Eric Prydz", "Opus", isrc="GBAYE2600002", duration_ms=540_500),
            candidate("2", "Eric Prydz", "Opus", isrc="GBAYE2600010", duration_ms=200_000),
        ],
    )
    chosen = choose(matches, threshold=0.8, margin=0.05)
    assert chosen is not None and chosen.candidate.values["isrc"] == "GBAYE2600002"


def test_featured_credit_and_case_do_not_hurt_a_match() -> None:
    matches = ranked(
        "AVICII ft. Etta",
        "levels",
        None,
        [candidate("1", "Avicii", "Levels", isrc="GBAYE2600003")],
    )
    assert matches[0].confidence == 1.0


@pytest.mark.parametrize(
    ("wanted", "offered"),
    [
        ("Strobe (Original Mix)", "Strobe"),
        ("Strobe [original mix]", "Strobe"),
        ("Strobe (Original)", "Strobe"),
        ("Strobe", "Strobe (Original Mix)"),
        ("Strobe (Original Mix)", "Strobe (Original Version)"),
    ],
)
def test_naming_the_original_version_does_not_hurt_a_match(wanted: str, offered: str) -> None:
    """Tracklists write "(Original Mix)" where MusicBrainz and Spotify write nothing."""
    assert title_similarity(wanted, offered) == title_similarity("Strobe", "Strobe") == 1.0
    matches = ranked(
        "Deadmau5", wanted, None, [candidate("1", "deadmau5", offered, isrc="GBAYE2600001")]
    )
    chosen = choose(matches, threshold=0.8, margin=0.05)
    assert chosen is not None and chosen.confidence == 1.0


@pytest.mark.parametrize(
    ("wanted", "offered"),
    [
        ("Strobe (Extended Mix)", "Strobe (Radio Edit)"),
        ("Strobe (Original Mix)", "Strobe (Radio Edit)"),
        ("Strobe (Original Mix)", "Strobe (Extended Mix)"),
        ("Strobe", "Strobe (Tiesto Remix)"),
        ("Strobe (Original Mix)", "Strobe (VIP)"),
        ("Strobe (Original Mix)", "Strobe (Dub)"),
    ],
)
def test_other_version_words_still_name_another_recording(wanted: str, offered: str) -> None:
    matches = ranked(
        "Deadmau5", wanted, None, [candidate("1", "deadmau5", offered, isrc="GBAYE2600001")]
    )
    assert matches[0].confidence < 0.8
    assert choose(matches, threshold=0.8, margin=0.05) is None


def test_musicbrainz_query_searches_without_the_original_version_bracket() -> None:
    """A phrase "Strobe (Original Mix)" would miss the recording MusicBrainz calls "Strobe"."""
    assert lucene_query("deadmau5", "Strobe (Original Mix)") == (
        'recording:"Strobe" AND artist:"deadmau5"'
    )
    assert lucene_query("deadmau5", "Strobe (Extended Mix)") == (
        'recording:"Strobe (Extended Mix)" AND artist:"deadmau5"'
    )


@pytest.mark.parametrize("client_class", [DeezerClient, SpotifyClient])
def test_deezer_and_spotify_search_without_the_original_version_bracket(
    fakes: Fakes, client_class: type[DeezerClient] | type[SpotifyClient]
) -> None:
    client = client_class(fakes.config())
    found = client.search("Deadmau5", "Strobe (Original Mix)")
    assert [c.title for c in found] == [fakes.catalogue[0].title]


def test_original_mix_in_the_tracklist_is_found_by_search(fakes: Fakes) -> None:
    enricher = Enricher.from_config(fakes.config(spotify=False), cache=None)
    result = enricher.enrich(TrackQuery("Deadmau5", "Strobe (Original Mix)"))
    assert result.status == ENRICHED
    assert result.values["isrc"] == fakes.catalogue[0].isrc
    assert result.provenance["isrc"] == {
        "source": "musicbrainz",
        "source_id": fakes.catalogue[0].mbid,
        "confidence": 1.0,
        "matched_by": "search",
    }


def test_search_without_isrc_fills_every_field_with_provenance(fakes: Fakes) -> None:
    enricher = Enricher.from_config(fakes.config(), cache=None)
    result = enricher.enrich(TrackQuery("Deadmau5", "Strobe"))
    recording = fakes.catalogue[0]
    assert result.status == ENRICHED
    assert result.values == {
        "isrc": recording.isrc,
        "spotify_id": recording.spotify_id,
        "musicbrainz_id": recording.mbid,
        "duration_ms": recording.duration_ms,
        "bpm": float(recording.bpm),
        "release_date": recording.release_date,
    }
    assert result.provenance["isrc"]["source"] == "musicbrainz"
    assert result.provenance["isrc"]["matched_by"] == "search"
    assert result.provenance["bpm"] == {
        "source": "deezer",
        "source_id": str(recording.deezer_id),
        "confidence": 1.0,
        "matched_by": "isrc",
    }
    assert result.provenance["spotify_id"]["source"] == "spotify"
    # One search, then one ISRC lookup per remaining source: three requests.
    assert fakes.all_api_requests() == 3


def test_known_isrc_is_looked_up_and_known_values_are_kept(fakes: Fakes) -> None:
    enricher = Enricher.from_config(fakes.config(), cache=None)
    query = TrackQuery("Eric Prydz", "Opus", {"isrc": "GBAYE2600002", "bpm": 126.0})
    result = enricher.enrich(query)
    assert result.status == ENRICHED
    assert "isrc" not in result.values and "bpm" not in result.values
    assert result.values["spotify_id"] == fakes.catalogue[1].spotify_id
    assert all(p["matched_by"] == "isrc" for p in result.provenance.values())
    assert [r.path for r in fakes.musicbrainz.requests] == ["/ws/2/isrc/GBAYE2600002"]


def test_ambiguous_candidates_guess_nothing_and_log_the_plan_warning(
    fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    enricher = Enricher.from_config(fakes.config(), cache=None)
    result = enricher.enrich(TrackQuery("Twin Artist", "Same Name"))
    assert result.status == NOT_FOUND
    assert result.values == {}
    assert "ISRC not found for Twin Artist - Same Name" in caplog.messages


def test_tunecore_code_is_refused_and_recorded(fakes: Fakes) -> None:
    enricher = Enricher.from_config(fakes.config(spotify=False), cache=None)
    result = enricher.enrich(TrackQuery("Indie Act", "Bedroom Tune"))
    assert result.status == NOT_FOUND
    assert "isrc" not in result.values
    assert result.values["musicbrainz_id"] == fakes.catalogue[5].mbid
    assert result.metadata()["rejected_identifiers"][0]["value"] == "TCAAB2312345"


def test_a_dead_source_is_skipped_and_the_track_marked_failed(fakes: Fakes) -> None:
    fakes.musicbrainz.script(503, MB_THROTTLED, times=100)
    config = fakes.config(max_attempts=1, breaker_failures=1, spotify=False)
    enricher = Enricher.from_config(config, cache=None)
    first = enricher.enrich(TrackQuery("Twin Artist", "Same Name"))
    assert first.status == FAILED
    assert "musicbrainz" in first.errors[0]
    # Deezer alone still finds a track MusicBrainz would have given.
    second = enricher.enrich(TrackQuery("Avicii", "Levels"))
    assert second.status == ENRICHED
    assert second.provenance["isrc"]["source"] == "deezer"
    assert len(fakes.musicbrainz.requests) == 1, "open circuit: no second MusicBrainz request"


def test_second_run_is_served_from_the_cache(fakes: Fakes, db_url: str, db) -> None:
    cache = ResponseCache(db_url)
    try:
        queries = [TrackQuery("Deadmau5", "Strobe"), TrackQuery("Twin Artist", "Same Name")]
        first = [Enricher.from_config(fakes.config(), cache).enrich(q) for q in queries]
        sent = fakes.all_api_requests()
        assert sent > 0
        second = [Enricher.from_config(fakes.config(), cache).enrich(q) for q in queries]
        assert fakes.all_api_requests() == sent, "a second run must make zero requests"
        assert [r.values for r in second] == [r.values for r in first]
        refreshed = Enricher.from_config(fakes.config(), cache).enrich(queries[0], refresh=True)
        assert fakes.all_api_requests() == sent + 3, "force_refresh bypasses the cache"
        assert refreshed.values == first[0].values
    finally:
        cache.close()
    with db.cursor() as cursor:
        cursor.execute("SELECT source, count(*) FROM enrichment_cache GROUP BY 1 ORDER BY 1")
        # Strobe: MB search, Deezer and Spotify ISRC lookups. Same Name: a search on each
        # source, and Deezer's two tied results fetched in full (they differ by ISRC).
        assert dict(cursor.fetchall()) == {"deezer": 4, "musicbrainz": 2, "spotify": 2}


def test_cache_entries_expire(fakes: Fakes, db_url: str, db) -> None:
    cache = ResponseCache(db_url)
    try:
        config = fakes.config().with_source("musicbrainz", cache_ttl=0.0)
        enricher = Enricher.from_config(config, cache)
        enricher.enrich(TrackQuery("Avicii", "Levels", {"isrc": "GBAYE2600003"}))
        enricher.enrich(TrackQuery("Avicii", "Levels", {"isrc": "GBAYE2600003"}))
        assert len(fakes.musicbrainz.requests) == 2, "TTL 0: MusicBrainz asked again"
        assert len(fakes.deezer.requests) == 1, "Deezer's TTL still holds"
        assert cache.purge_expired() == 1
    finally:
        cache.close()
