"""Matching and the enricher: the right recording or nothing, provenance on every value, cache."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from scrapers.enrichment.cache import ResponseCache
from scrapers.enrichment.config import EnrichmentConfig
from scrapers.enrichment.deezer import DeezerClient
from scrapers.enrichment.distance import artist_similarity, similarity, stated_version
from scrapers.enrichment.enricher import Enricher, TrackQuery
from scrapers.enrichment.matching import (
    AMBIGUOUS,
    BELOW_THRESHOLD,
    NO_CANDIDATES,
    Candidate,
    build_candidate,
    choose,
    ranked,
    title_similarity,
)
from scrapers.enrichment.musicbrainz import lucene_query
from scrapers.enrichment.spotify import SpotifyClient
from scrapers.settings_check import project_settings
from scrapers.statuses import EnrichmentStatus
from tests.fakes.fixtures import Fakes
from tests.fakes.sources import MB_THROTTLED, RecordedAnswers

DEV_SET = Path(__file__).parent / "fixtures" / "enrichment" / "dev.json"


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
    chosen = choose(matches, threshold=0.8, margin=0.05).match
    assert chosen is not None and chosen.candidate.source_id == "1"
    assert chosen.confidence == 1.0


def test_choose_refuses_below_threshold() -> None:
    matches = ranked("Deadmau5", "Strobe", None, [candidate("1", "Kaskade", "Strobe Lights")])
    assert matches[0].confidence < 0.8
    assert choose(matches, threshold=0.8, margin=0.05).match is None


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
    assert choose(matches, threshold=0.8, margin=0.05).match is None


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
    assert choose(matches, threshold=0.8, margin=0.05).match is not None


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
    chosen = choose(matches, threshold=0.8, margin=0.05).match
    assert chosen is not None and chosen.candidate.values["isrc"] == "GBAYE2600002"


def test_case_costs_nothing_and_a_missing_featured_artist_little() -> None:
    """Every credited artist counts: the guest missing from the offer costs, but not a match."""
    matches = ranked(
        "AVICII ft. Etta",
        "levels",
        None,
        [candidate("1", "Avicii", "Levels", isrc="GBAYE2600003")],
    )
    assert matches[0].confidence == 0.9
    assert choose(matches, threshold=0.8, margin=0.05).match is not None


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
    chosen = choose(matches, threshold=0.8, margin=0.05).match
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
    assert choose(matches, threshold=0.8, margin=0.05).match is None


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
    assert result.status == EnrichmentStatus.ENRICHED
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
    assert result.status == EnrichmentStatus.ENRICHED
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
    assert result.status == EnrichmentStatus.ENRICHED
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
    assert result.status == EnrichmentStatus.NOT_FOUND
    assert result.values == {}
    assert "ISRC not found for Twin Artist - Same Name" in caplog.messages


def test_tunecore_code_is_refused_and_recorded(fakes: Fakes) -> None:
    enricher = Enricher.from_config(fakes.config(spotify=False), cache=None)
    result = enricher.enrich(TrackQuery("Indie Act", "Bedroom Tune"))
    assert result.status == EnrichmentStatus.NOT_FOUND
    assert "isrc" not in result.values
    assert result.values["musicbrainz_id"] == fakes.catalogue[5].mbid
    assert result.metadata()["rejected_identifiers"][0]["value"] == "TCAAB2312345"


def test_a_dead_source_is_skipped_and_the_track_marked_failed(fakes: Fakes) -> None:
    fakes.musicbrainz.script(503, MB_THROTTLED, times=100)
    config = fakes.config(max_attempts=1, breaker_failures=1, spotify=False)
    enricher = Enricher.from_config(config, cache=None)
    first = enricher.enrich(TrackQuery("Twin Artist", "Same Name"))
    assert first.status == EnrichmentStatus.FAILED
    assert "musicbrainz" in first.errors[0]
    # Deezer alone still finds a track MusicBrainz would have given.
    second = enricher.enrich(TrackQuery("Avicii", "Levels"))
    assert second.status == EnrichmentStatus.ENRICHED
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


# Issue 15: the distance rules, as tables of inputs (no database, no HTTP).


@pytest.mark.parametrize(
    ("wanted", "offered", "disambiguation", "video", "matches"),
    [
        # A version word on one side only is decisive, however long the title (item 3).
        ("Never Gonna Give You Up (Live)", "Never Gonna Give You Up", "", False, False),
        ("Never Gonna Give You Up (Radio Edit)", "Never Gonna Give You Up", "", False, False),
        ("Psycho Killer (Live)", "Psycho Killer", "", False, False),
        ("Last Ferry (Live Edit)", "Last Ferry", "", False, False),
        ("Last Ferry", "Last Ferry (Live Edit)", "", False, False),
        ("Opus (Four Tet Remix)", "Opus - Four Tet Remix", "", False, True),
        ("Strobe (Original Mix)", "Strobe", "", False, True),
        # The source's disambiguation and video flag name the version too (item 2).
        ("Karma Police", "Karma Police", "live, 1997-12-19: Hammerstein Ballroom", False, False),
        (
            "Karma Police (Live)",
            "Karma Police",
            "live, 1997-12-19: Hammerstein Ballroom",
            False,
            True,
        ),
        ("Smooth Operator", "Smooth Operator", "UK single version", False, False),
        ("The Lovecats", "The Lovecats", "album original mix", False, True),
        ("The Enemy", "The Enemy", "official music video", True, False),
        ("The Enemy", "The Enemy", "", True, False),
        ("The Enemy", "The Enemy", "", False, True),
    ],
)
def test_version_rule(
    wanted: str, offered: str, disambiguation: str, video: bool, matches: bool
) -> None:
    similar = title_similarity(wanted, offered, stated_version(disambiguation, video))
    assert (similar >= 0.8) is matches
    assert matches or similar == 0.0, "a version mismatch is decisive, not a discount"


@pytest.mark.parametrize(
    ("wanted", "offered", "low", "high"),
    [
        ("Queen & David Bowie", "Queen & David Bowie", 1.0, 1.0),
        ("Queen & David Bowie", "David Bowie, Queen", 1.0, 1.0),
        ("Kanye West", "Kanye West feat. The Game", 0.9, 0.9),
        ("Kanye West ft. The Game", "Kanye West feat. The Game", 1.0, 1.0),
        ("Kanye West ft. The Game", "Kanye West", 0.9, 0.9),
        ("Deadmau5", "deadmau5", 1.0, 1.0),
        ("Joss Stone", "Queen & David Bowie", 0.0, 0.3),
    ],
)
def test_artist_similarity_counts_every_credited_artist(
    wanted: str, offered: str, low: float, high: float
) -> None:
    assert low <= round(artist_similarity(wanted, offered), 4) <= high


def test_similarity_ignores_word_order() -> None:
    """rapidfuzz's token-sort ratio: "Bowie, David" is "David Bowie"; difflib gave 0.45."""
    assert similarity("Bowie, David", "David Bowie") == 1.0
    assert similarity("Strobe", "Strobe Lights") < 0.8
    # Same version word, another remixer: the remixer's name still tells them apart.
    assert title_similarity("Opus (Four Tet Remix)", "Opus (Eric Prydz Remix)") < 0.8


def test_featured_guest_tells_a_solo_recording_from_a_collaboration() -> None:
    solo = candidate("1", "Kanye West", "Crack Music", isrc="USUM70512346")
    feat = candidate("2", "Kanye West feat. The Game", "Crack Music", isrc="USUM70512345")
    for artist, expected in (("Kanye West", "1"), ("Kanye West ft. The Game", "2")):
        chosen = choose(ranked(artist, "Crack Music", None, [feat, solo]), 0.8, 0.05).match
        assert chosen is not None and chosen.candidate.source_id == expected


def test_studio_recording_wins_over_video_and_live_takes_of_the_same_title() -> None:
    """Before: all three scored 1.0 and the tie made the search ambiguous (item 2)."""
    video = Candidate("musicbrainz", "v", "The Enemy", "Paradise Lost", video=True)
    live = Candidate("musicbrainz", "l", "The Enemy", "Paradise Lost", disambiguation="live")
    studio = Candidate("musicbrainz", "s", "The Enemy", "Paradise Lost")
    chosen = choose(ranked("Paradise Lost", "The Enemy", None, [video, live, studio]), 0.8, 0.05)
    assert chosen.match is not None and chosen.match.candidate.source_id == "s"


def test_isrcs_with_a_country_code_no_agency_holds_are_refused_and_the_oldest_preferred() -> None:
    """Item 1: alphabetical order put the typo "CB…" first; it was taken."""
    found = build_candidate(
        "musicbrainz",
        "b6fa3b00-c0eb-4ff7-b7ec-db9a99340581",
        "Waking Season",
        "Caspian",
        ["CBAHT1200073", "GBAHT1200073", "GB5KW2103369", "GBARL8700052"],
    )
    assert found.values["isrc"] == "GBARL8700052"
    assert found.isrcs == ("GBARL8700052", "GBAHT1200073", "GB5KW2103369")
    assert [r["value"] for r in found.rejected] == ["CBAHT1200073"]
    assert "country code CB" in found.rejected[0]["reason"]


@pytest.mark.parametrize(
    ("offered", "reason", "described"),
    [
        ([], NO_CANDIDATES, set()),
        ([candidate("1", "Kaskade", "Strobe Lights")], BELOW_THRESHOLD, {"best"}),
        (
            [
                candidate("1", "Twin Artist", "Same Name", isrc="GBAYE2600004"),
                candidate("2", "Twin Artist", "Same Name", isrc="GBAYE2600005"),
            ],
            AMBIGUOUS,
            {"ambiguous_between"},
        ),
    ],
)
def test_a_refusal_says_why(offered: list[Candidate], reason: str, described: set[str]) -> None:
    decision = choose(ranked("Twin Artist", "Same Name", None, offered), 0.8, 0.05)
    assert decision.match is None and decision.reason == reason
    assert set(decision.describe()) == {"reason"} | described


# The dev set: real recorded answers replayed through the enricher over HTTP.


def _dev_cases() -> list[dict[str, Any]]:
    return json.loads(DEV_SET.read_text())["cases"]


@pytest.fixture
def recorded() -> Iterator[tuple[RecordedAnswers, Enricher]]:
    with RecordedAnswers() as server:
        config = EnrichmentConfig.from_settings(
            project_settings(
                {
                    "ENRICHMENT_MUSICBRAINZ_URL": server.url,
                    "ENRICHMENT_DEEZER_URL": server.url,
                    "ENRICHMENT_RATES": {"musicbrainz": 1000.0, "deezer": 1000.0, "spotify": 1.0},
                    "ENRICHMENT_MAX_ATTEMPTS": 1,
                }
            ),
            environ={},
        )
        yield server, Enricher.from_config(config, cache=None)


@pytest.mark.parametrize("case", _dev_cases(), ids=lambda case: case["id"])
def test_dev_set_case(recorded: tuple[RecordedAnswers, Enricher], case: dict[str, Any]) -> None:
    server, enricher = recorded
    server.case = case
    result = enricher.enrich(TrackQuery(case["artist"], case["title"]))
    label = case["label"]
    if label["isrcs"]:
        assert result.values.get("isrc") in label["isrcs"]
    else:
        assert "isrc" not in result.values
    assert result.values.get("musicbrainz_id") == label["musicbrainz_id"]


def _dev_case(case_id: str) -> dict[str, Any]:
    return next(case for case in _dev_cases() if case["id"] == case_id)


def test_an_isrc_another_source_confirms_is_preferred(
    recorded: tuple[RecordedAnswers, Enricher],
) -> None:
    """Eight ISRCs on one recording; Deezer knows the track under GBARL8700052 (item 1)."""
    server, enricher = recorded
    server.case = _dev_case("dev-rick")
    result = enricher.enrich(TrackQuery("Rick Astley", "Never Gonna Give You Up"))
    assert result.values["isrc"] == "GBARL8700052"
    assert result.provenance["isrc"]["confirmed_by"] == "deezer"
    assert result.provenance["bpm" if "bpm" in result.values else "release_date"]["source"]
    paths = [r.path for r in server.requests]
    assert paths == ["/ws/2/recording", "/track/isrc:GBARL8700052"]


def _not_found(reason: str) -> float:
    return REGISTRY.get_sample_value("enrichment_not_found_total", {"reason": reason}) or 0.0


@pytest.mark.parametrize(
    ("case_id", "reason"),
    [
        ("dev-karma-live", AMBIGUOUS),
        ("dev-zoot", "no_isrc"),
        ("dev-psycho-extended", BELOW_THRESHOLD),
    ],
)
def test_a_track_left_without_isrc_keeps_why_and_is_counted(
    recorded: tuple[RecordedAnswers, Enricher], case_id: str, reason: str
) -> None:
    server, enricher = recorded
    case = _dev_case(case_id)
    server.case = case
    before = _not_found(reason)
    result = enricher.enrich(TrackQuery(case["artist"], case["title"]))
    assert result.status == EnrichmentStatus.NOT_FOUND
    not_found = result.metadata()["not_found"]
    assert not_found["reason"] == reason
    assert not_found["sources"][0]["source"] == "musicbrainz"
    assert _not_found(reason) == before + 1
    if reason == AMBIGUOUS:
        rivals = not_found["sources"][0]["ambiguous_between"]
        assert {r["source_id"] for r in rivals} == {
            "7e2c01ee-4ab2-41c7-9b4a-57f712053183",
            "6a29ed9f-b78c-4281-902a-8ff78af43f67",
        }


def test_no_candidates_and_a_dead_source_are_reasons_too(
    recorded: tuple[RecordedAnswers, Enricher],
) -> None:
    server, enricher = recorded
    server.case = {}
    nothing = enricher.enrich(TrackQuery("Nobody", "Nothing"))
    assert nothing.metadata()["not_found"]["reason"] == NO_CANDIDATES
    server.script(503, MB_THROTTLED, path_contains="/ws/2/")
    before = _not_found("source_down")
    down = enricher.enrich(TrackQuery("Nobody", "Nothing"))
    assert down.status == EnrichmentStatus.FAILED
    assert down.metadata()["not_found"]["reason"] == "source_down"
    assert _not_found("source_down") == before + 1
