"""The enrichment item pipeline: both modes, what it skips, and that it never blocks the loop.

The in-process tests drive the pipeline the way Scrapy's item processor does (``open_spider``,
``await process_item``, ``close_spider``) on an asyncio loop; the last test runs a whole
``scrapy crawl`` in a child process with the enrichment and database pipelines.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from scrapers.enrichment.ratelimit import PostgresRateLimiter
from scrapers.items import SetlistItem, TrackItem
from scrapers.pipelines.enrichment_pipeline import EnrichmentPipeline
from tests.conftest import FIXTURES, REPO_ROOT
from tests.fakes.fixtures import SPOTIFY_ID, SPOTIFY_SECRET, Fakes, recording
from tests.fakes.sources import FakeDeezer, FakeMusicBrainz, FakeSpotify
from tests.project import project_crawler


def settings_for(fakes: Fakes, mode: str, **extra: Any) -> dict[str, Any]:
    return {
        "ENRICHMENT_MODE": mode,
        "ENRICHMENT_MUSICBRAINZ_URL": fakes.musicbrainz.url,
        "ENRICHMENT_DEEZER_URL": fakes.deezer.url,
        "ENRICHMENT_SPOTIFY_API_URL": fakes.spotify.url,
        "ENRICHMENT_SPOTIFY_ACCOUNTS_URL": fakes.spotify.url,
        "ENRICHMENT_RATES": {"musicbrainz": 20.0, "deezer": 20.0, "spotify": 20.0},
        **extra,
    }


@contextmanager
def opened(settings: dict[str, Any]) -> Iterator[EnrichmentPipeline]:
    pipeline = EnrichmentPipeline.from_crawler(project_crawler(**settings))
    pipeline.open_spider()
    try:
        yield pipeline
    finally:
        pipeline.close_spider()


def run(pipeline: EnrichmentPipeline, items: list[Any]) -> list[Any]:
    async def process_all() -> list[Any]:
        return await asyncio.gather(*(pipeline.process_item(item) for item in items))

    return asyncio.run(process_all())


def track(artist: str, title: str, **fields: Any) -> TrackItem:
    return TrackItem(
        setlist_source="1001tracklists",
        setlist_source_id="abc",
        artist=artist,
        title=title,
        **fields,
    )


HOLD_SECONDS = 1.5

SKIPPED = [
    SetlistItem(source="1001tracklists", source_id="abc", title="Some set"),
    track("ID", "ID", is_unknown=True),
    track("Deadmau5", "ID", is_partial_id=True),
    track("Deadmau5", "id"),
]


@pytest.fixture
def spotify_env(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", SPOTIFY_ID)
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", SPOTIFY_SECRET)
    monkeypatch.setenv("DATABASE_URL", db_url)


def test_deferred_mode_marks_for_backfill_without_a_request(fakes: Fakes, spotify_env) -> None:
    with opened(settings_for(fakes, "deferred")) as pipeline:
        plain, identified, *skipped = run(
            pipeline,
            [
                track("Deadmau5", "Strobe"),
                track("Avicii", "Levels", isrc="GB-AYE-26-00003"),
                *SKIPPED,
            ],
        )
    assert plain["enrichment_status"] == "pending"
    assert "enrichment_status" not in identified
    assert all("enrichment_status" not in item for item in skipped)
    assert fakes.all_api_requests() == 0


def test_inline_mode_enriches_with_provenance(fakes: Fakes, spotify_env, caplog) -> None:
    caplog.set_level(logging.WARNING)
    with opened(settings_for(fakes, "inline")) as pipeline:
        strobe, twin, *skipped = run(
            pipeline, [track("Deadmau5", "Strobe"), track("Twin Artist", "Same Name"), *SKIPPED]
        )
    assert strobe["isrc"] == "GBAYE2600001"
    assert strobe["spotify_id"] == fakes.catalogue[0].spotify_id
    assert strobe["enrichment_status"] == "enriched"
    provenance = strobe["metadata"]["enrichment"]["fields"]
    assert provenance["isrc"]["source"] == "musicbrainz"
    assert provenance["bpm"]["source"] == "deezer"
    assert "isrc" not in twin and twin["enrichment_status"] == "not_found"
    assert "ISRC not found for Twin Artist - Same Name" in caplog.messages
    assert all("enrichment_status" not in item for item in skipped)
    searched = [r.query.get("query", "") for r in fakes.musicbrainz.requests]
    assert not any('"ID"' in query or '"id"' in query for query in searched)


def test_inline_lookups_share_the_sources_limit_with_other_workers(
    fakes: Fakes, spotify_env, db_url: str
) -> None:
    # Another worker (the enrichment service, another crawl) saw MusicBrainz refuse: it holds
    # every worker back. The inline crawl must wait too, not hammer the source on its own.
    elsewhere = PostgresRateLimiter(db_url, "musicbrainz", 20.0)
    elsewhere.hold(HOLD_SECONDS)
    elsewhere.close()
    started = time.monotonic()
    with opened(settings_for(fakes, "inline")) as pipeline:
        [strobe] = run(pipeline, [track("Deadmau5", "Strobe")])
    first_request = min(request.at for request in fakes.musicbrainz.requests)
    assert strobe["isrc"] == "GBAYE2600001"
    assert first_request - started >= HOLD_SECONDS - 0.2


def test_identical_items_in_flight_share_one_lookup(fakes: Fakes, spotify_env) -> None:
    with opened(settings_for(fakes, "inline")) as pipeline:
        items = run(pipeline, [track("Eric Prydz", "Opus") for _ in range(6)])
    assert {item["isrc"] for item in items} == {"GBAYE2600002"}
    assert len(fakes.musicbrainz.requests) == 1


def test_lookups_waiting_on_rate_limits_do_not_block_the_loop(fakes: Fakes, spotify_env) -> None:
    """MusicBrainz at 4 req/s and 8 distinct tracks: 2 s of waiting, the loop ticks all along."""
    for n in range(10, 18):
        fakes.catalogue.append(recording(n, f"Artist {n}", f"Title {n}"))
    settings = settings_for(fakes, "inline", ENRICHMENT_CONCURRENCY=8)
    settings["ENRICHMENT_RATES"] = {"musicbrainz": 4.0, "deezer": 20.0, "spotify": 20.0}
    ticks = 0

    async def ticker(done: asyncio.Event) -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    async def crawl(pipeline: EnrichmentPipeline) -> list[Any]:
        done = asyncio.Event()
        ticking = asyncio.create_task(ticker(done))
        items = await asyncio.gather(
            *(pipeline.process_item(track(f"Artist {n}", f"Title {n}")) for n in range(10, 18))
        )
        done.set()
        await ticking
        return items

    loop = asyncio.new_event_loop()
    try:
        with opened(settings) as pipeline:
            started = loop.time()
            items = loop.run_until_complete(crawl(pipeline))
            elapsed = loop.time() - started
    finally:
        loop.close()
    assert all(item["enrichment_status"] == "enriched" for item in items)
    assert elapsed >= 1.6, "8 MusicBrainz requests at 4/s take at least 1.75 s"
    assert ticks >= elapsed / 0.01 * 0.5, "the event loop must keep running during lookups"


def test_a_failing_lookup_keeps_the_item_pending(fakes: Fakes, spotify_env) -> None:
    with opened(settings_for(fakes, "inline")) as pipeline:
        pipeline._cache.close()  # the cache's database goes away mid-crawl
        [item] = run(pipeline, [track("Deadmau5", "Strobe")])
        pipeline._cache = None
    assert item["enrichment_status"] == "pending"
    assert "isrc" not in item


def test_unknown_mode_is_refused(fakes: Fakes, spotify_env) -> None:
    with pytest.raises(ValueError, match="ENRICHMENT_MODE"):
        EnrichmentPipeline.from_crawler(project_crawler(**settings_for(fakes, "sometimes")))


CRAWL_CATALOGUE = [
    recording(21, "Nova Harbor", "Lanterns"),
    recording(22, "Sable Drift & Orrin Vale", "Fieldnotes"),
    # The page shows a decoy artist on this row; its microdata names the real one.
    recording(23, "Juno Reyes & Tamsin Cole", "Hollow Light"),
    # The page plays the "(Live Edit)": another recording, which must not take this ISRC.
    recording(24, "Tamsin Cole", "Last Ferry"),
]


def test_inline_crawl_stores_enriched_tracks(db_url: str, db) -> None:
    """``scrapy crawl`` with both pipelines: ISRCs land in PostgreSQL, ID rows cost nothing."""
    with (
        FakeMusicBrainz(CRAWL_CATALOGUE, rate=20) as musicbrainz,
        FakeDeezer(CRAWL_CATALOGUE) as deezer,
        FakeSpotify(CRAWL_CATALOGUE, client_id=SPOTIFY_ID, client_secret=SPOTIFY_SECRET) as spotify,
    ):
        fakes = Fakes(musicbrainz, deezer, spotify, CRAWL_CATALOGUE)
        overrides = settings_for(fakes, "inline", PROMETHEUS_ENABLED=False, LOG_LEVEL="INFO")
        command = [sys.executable, "-m", "scrapy", "crawl", "1001tracklists", "-a"]
        command.append(
            f"start_urls={(FIXTURES / '1001tracklists' / 'demo_tracklist.html').as_uri()}"
        )
        for name, value in overrides.items():
            command += ["-s", f"{name}={json.dumps(value) if isinstance(value, dict) else value}"]
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "SPOTIFY_CLIENT_ID": SPOTIFY_ID,
            "SPOTIFY_CLIENT_SECRET": SPOTIFY_SECRET,
        }
        done = subprocess.run(
            command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-3000:]
        searched = [r.query.get("query", "") for r in musicbrainz.requests]
    with db.cursor() as cursor:
        cursor.execute("SELECT title, isrc FROM tracks WHERE isrc IS NOT NULL ORDER BY isrc")
        assert cursor.fetchall() == [
            ("Lanterns", "GBAYE2600021"),
            ("Fieldnotes", "GBAYE2600022"),
            ("Hollow Light", "GBAYE2600023"),
        ]
        # "Last Ferry (Live Edit)" is not the catalogue's "Last Ferry": nothing guessed.
        cursor.execute("SELECT title FROM tracks WHERE enrichment_status = 'not_found'")
        assert ("Last Ferry (Live Edit)",) in cursor.fetchall()
    assert "ISRC not found for Kite Theory" in done.stderr
    assert not any(query.endswith('"ID"') or 'recording:"ID"' in query for query in searched)
    assert "fake-secret-do-not-log" not in done.stderr
