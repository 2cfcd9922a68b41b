"""Several enrichment workers at once, the schedule, and the catalogue gauges (issues 14, 15).

Workers are real ``scripts/enrichment_service.py`` processes against one real database, the fake
sources, and (for the Redis-held limit) a real Redis (``redis_server_url``: ``REDIS_URL``, else
127.0.0.1:6379, else an embedded one), with a key prefix of the test's own that is deleted
afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from scrapers.enrichment.backfill import Backfill
from scrapers.enrichment.enricher import Enricher
from scrapers.enrichment.ratelimit import (
    PostgresRateLimiter,
    RedisRateLimiter,
    SlotLimiter,
    shared_limiters,
)
from scrapers.enrichment.service import EnrichmentService
from tests.conftest import REPO_ROOT
from tests.fakes.fixtures import SPOTIFY_ID, SPOTIFY_SECRET, Fakes, recording
from tests.fakes.sources import FakeDeezer, FakeMusicBrainz, FakeSpotify
from tests.redis_process import RedisProcess
from tests.serving import serving
from tests.test_enrichment_service import (
    PLAN_BODY,
    request,
    running_service,
    service_process,
    store,
    track_row,
)

# MusicBrainz's limit in these tests: slow enough that three workers each sending at this rate
# would trip the fake's 503s at once, fast enough for a short test.
SHARED_RATE = 4.0
TRACKS = 30


@pytest.fixture
def redis_store(redis_server_url: str) -> Iterator[tuple[str, str]]:
    """The test Redis and a key prefix of this test's own, whose keys are deleted after."""
    url = redis_server_url
    client = redis.Redis.from_url(url)
    client.ping()
    prefix = f"test:{uuid.uuid4().hex}:"
    yield url, prefix
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def many_tracks() -> Iterator[Fakes]:
    """Fakes knowing ``TRACKS`` recordings; MusicBrainz refuses requests above SHARED_RATE."""
    catalogue = [
        recording(n, f"Worker Artist {n}", f"Worker Title {n}") for n in range(1, TRACKS + 1)
    ]
    with (
        FakeMusicBrainz(catalogue, rate=SHARED_RATE) as musicbrainz,
        FakeDeezer(catalogue) as deezer,
        FakeSpotify(catalogue, client_id=SPOTIFY_ID, client_secret=SPOTIFY_SECRET) as spotify,
    ):
        yield Fakes(musicbrainz, deezer, spotify, catalogue)


def most_in_window(times: list[float], window: float) -> int:
    """The most requests that arrived within any ``window`` seconds."""
    times = sorted(times)
    most = start = 0
    for end, at in enumerate(times):
        while at - times[start] > window:
            start += 1
        most = max(most, end - start + 1)
    return most


@pytest.mark.slow
def test_three_workers_share_the_rate_limit_in_postgresql(
    many_tracks: Fakes, db_url: str, db, tmp_path: Path
) -> None:
    held = run_three_workers(many_tracks, db_url, db, tmp_path, None, "unused:")
    assert held == ["deezer", "musicbrainz"]


@pytest.mark.slow
def test_three_workers_share_the_rate_limit_in_redis(
    many_tracks: Fakes, db_url: str, db, tmp_path: Path, redis_store: tuple[str, str]
) -> None:
    redis_url, prefix = redis_store
    assert run_three_workers(many_tracks, db_url, db, tmp_path, redis_url, prefix) == []
    keys = redis.Redis.from_url(redis_url).keys(f"{prefix}ratelimit:*")
    assert sorted(keys) == [f"{prefix}ratelimit:{s}".encode() for s in ("deezer", "musicbrainz")]


def run_three_workers(
    fakes: Fakes, db_url: str, db, tmp_path: Path, redis_url: str | None, prefix: str
) -> list[str]:
    """Three worker processes each asked for every track at once; the sources whose limit
    PostgreSQL holds. Checks no track is looked up or stored twice and the combined rate."""
    store(db_url, *({"artist": r.artist, "title": r.title} for r in fakes.catalogue))
    settings = {
        "ENRICHMENT_RATES": f'{{"musicbrainz": {SHARED_RATE}, "deezer": 20}}',
        "ENRICHMENT_REDIS_KEY_PREFIX": prefix,
    }
    answers: list[tuple[int, Any]] = []
    with ExitStack() as stack:
        workers = [
            stack.enter_context(
                service_process(
                    db_url,
                    fakes,
                    tmp_path / f"worker{n}.log",
                    settings=settings,
                    redis_url=redis_url,
                )
            )
            for n in range(3)
        ]
        posts = [
            threading.Thread(
                target=lambda url=w.url: answers.append(
                    request(f"{url}/enrich/batch", b'{"max_tracks": 30}')
                )
            )
            for w in workers
        ]
        for post in posts:
            post.start()
        for post in posts:
            post.join()
    assert [status for status, _ in answers] == [200, 200, 200], answers
    tried = [answer["tried"] for _, answer in answers]
    assert sum(tried) == TRACKS and all(tried), f"every worker took tracks of its own: {tried}"
    assert sum(answer["claims_lost"] for _, answer in answers) == 0
    assert fakes.musicbrainz.throttled == 0, "the fake MusicBrainz saw requests over its rate"
    searches = [r.query["query"] for r in fakes.musicbrainz.requests if "query" in r.query]
    assert len(searches) == len(set(searches)) == TRACKS, "no track looked up twice"
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE enrichment_status = 'enriched' AND isrc IS NOT NULL),"
            " count(enrichment_claimed_by) FROM tracks"
        )
        assert cursor.fetchone() == (TRACKS, 0), "each track enriched once, every claim released"
        cursor.execute("SELECT source FROM enrichment_rate_limits ORDER BY source")
        held_in_postgres = [row[0] for row in cursor.fetchall()]
    # The combined rate: no more than the limit in any window, give or take one request that
    # arrived late (a loaded machine delays a send, not the slot it was given), and on average.
    # Three workers each at the limit would send three times as many.
    times = [r.at for r in fakes.musicbrainz.requests]
    assert most_in_window(times, 2.0) <= 2 * SHARED_RATE + 2
    assert (len(times) - 1) / (max(times) - min(times)) <= SHARED_RATE * 1.1
    return held_in_postgres


def shared_pair(backend: str, db_url: str, store: tuple[str, str] | None) -> list[SlotLimiter]:
    """Two limiters for one source at 2 requests/s, as two workers would hold them."""
    if backend == "postgresql":
        return [PostgresRateLimiter(db_url, "musicbrainz", 2.0, sleep=_no_sleep) for _ in "ab"]
    assert store is not None
    url, prefix = store
    return [
        RedisRateLimiter(url, "musicbrainz", 2.0, key_prefix=prefix, sleep=_no_sleep) for _ in "ab"
    ]


def _no_sleep(seconds: float) -> None:
    """The waits are asserted, not slept."""


@pytest.mark.parametrize("backend", ["postgresql", "redis"])
def test_shared_limiters_space_and_hold_every_worker(
    backend: str, db_url: str, request: pytest.FixtureRequest
) -> None:
    store = request.getfixturevalue("redis_store") if backend == "redis" else None
    first, second = shared_pair(backend, db_url, store)

    def timed(call: Callable[[], Any]) -> tuple[float, Any, float]:
        before = time.monotonic()
        result = call()
        return before, result, time.monotonic()

    def assert_waits(limiter: Any, seconds: float, since: tuple[float, Any, float]) -> None:
        """``limiter.acquire()`` waits ``seconds`` from the moment of the call ``since``: less the
        time between the two calls, which a busy machine (parallel test workers) stretches."""
        asked, wait, answered = timed(limiter.acquire)
        assert seconds - (answered - since[0]) - 0.1 <= wait <= seconds - (asked - since[2]) + 0.1

    try:
        acquired = timed(first.acquire)
        assert acquired[1] == 0
        # The other worker's next slot is one interval (0.5 s) later, then two.
        assert_waits(second, 0.5, acquired)
        assert_waits(first, 1.0, acquired)
        # A 503 seen by one worker holds every worker back.
        held = timed(lambda: first.hold(5.0))
        assert_waits(second, 5.0, held)
    finally:
        first.close()
        second.close()


@pytest.mark.slow
def test_a_killed_workers_claims_come_free_after_the_lease(
    fakes: Fakes, db_url: str, db, tmp_path: Path
) -> None:
    store(
        db_url,
        {"artist": "Deadmau5", "title": "Strobe"},
        {"artist": "Eric Prydz", "title": "Opus"},
        {"artist": "Avicii", "title": "Levels"},
    )
    fakes.musicbrainz.latency = 2.0  # the worker is mid-lookup when it is killed
    with service_process(
        db_url, fakes, tmp_path / "killed.log", settings={"ENRICHMENT_CLAIM_LEASE": "3"}
    ) as worker:
        threading.Thread(target=post_unanswered, args=(worker.url,), daemon=True).start()
        while not fakes.musicbrainz.requests:
            time.sleep(0.01)
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(timeout=10)
    killed_at = time.monotonic()
    fakes.musicbrainz.latency = 0.0
    with db.cursor() as cursor:
        cursor.execute("SELECT count(enrichment_claimed_by) FROM tracks")
        assert cursor.fetchone()[0] == 3, "the killed worker's claims outlive it"
    config = fakes.config(spotify=False)
    other = Backfill(db_url, config, Enricher.from_config(config, None))
    assert other.run(max_tracks=10).tried == 0, "claimed tracks are not taken during the lease"
    time.sleep(max(0.0, 3.5 - (time.monotonic() - killed_at)))
    counts = other.run(max_tracks=10)
    assert (counts.tried, counts.enriched) == (3, 3)
    assert track_row(db, "Strobe")["enrichment_status"] == "enriched"


def test_a_worker_whose_lease_ran_out_stores_nothing(fakes: Fakes, db_url: str, db) -> None:
    """Its tracks went to another worker: only that worker's results are stored."""
    store(
        db_url,
        {"artist": "Deadmau5", "title": "Strobe"},
        {"artist": "Eric Prydz", "title": "Opus"},
    )
    fakes.musicbrainz.latency = 2.0  # each lookup outlasts the 1 s lease
    config = fakes.config(spotify=False, claim_lease=1.0)
    workers = [Backfill(db_url, config, Enricher.from_config(config, None)) for _ in range(2)]
    late: dict[str, Any] = {}
    first = threading.Thread(target=lambda: late.update(counts=workers[0].run(max_tracks=10)))
    first.start()
    while not fakes.musicbrainz.requests:
        time.sleep(0.01)
    time.sleep(1.2)  # the first worker's lease has run out, its lookups are still in flight
    second = workers[1].run(max_tracks=10)
    first.join()
    assert (late["counts"].claims_lost, late["counts"].tried) == (2, 0)
    assert (second.tried, second.enriched, second.claims_lost) == (2, 2, 0)
    assert track_row(db, "Strobe")["enrichment_status"] == "enriched"
    with db.cursor() as cursor:
        cursor.execute("SELECT count(enrichment_claimed_by) FROM tracks")
        assert cursor.fetchone()[0] == 0


def test_an_unreachable_redis_stops_the_worker_without_its_password(db_url: str) -> None:
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "enrichment_service.py"), "--port", "0"],
        env={**os.environ, "DATABASE_URL": db_url, "REDIS_URL": "redis://:s3cret@127.0.0.1:9/0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "Cannot start: Redis at REDIS_URL" in completed.stderr
    assert "s3cret" not in completed.stdout + completed.stderr


def post_unanswered(url: str) -> None:
    """Ask for a batch from a worker that will be killed before it answers."""
    with suppress(urllib.error.URLError, ConnectionError):
        request(f"{url}/enrich/batch", PLAN_BODY)


def test_every_runs_batches_on_its_own(fakes: Fakes, db_url: str, db, tmp_path: Path) -> None:
    store(
        db_url,
        {"artist": "Deadmau5", "title": "Strobe"},
        {"artist": "Eric Prydz", "title": "Opus"},
        {"artist": "Avicii", "title": "Levels"},
    )
    with service_process(
        db_url, fakes, tmp_path / "every.log", "--every", "1", "--max-tracks", "2"
    ) as worker:
        deadline = time.monotonic() + 30
        while True:
            with db.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM tracks WHERE enrichment_status = 'pending'")
                if cursor.fetchone()[0] == 0:
                    break
            assert time.monotonic() < deadline, worker.output()
            time.sleep(0.2)
        # A track that arrives later is picked up at a later tick.
        store(db_url, {"artist": "Deadmau5", "title": "Ghosts n Stuff"})
        deadline = time.monotonic() + 30
        while track_row(db, "Ghosts n Stuff")["enrichment_status"] == "pending":
            assert time.monotonic() < deadline, worker.output()
            time.sleep(0.2)
    assert "A batch of 2 tracks every 1 s" in worker.output()
    assert track_row(db, "Strobe")["enrichment_status"] == "enriched"


@pytest.mark.parametrize("value", ["0", "-1", "0.5", "abc", "nan", "inf", "1e9", ""])
def test_an_invalid_every_stops_with_a_clear_error(value: str) -> None:
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "enrichment_service.py"), "--every", value],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert "--every: must be a number of seconds between 1 and 604800" in completed.stderr


def gauges(url: str) -> dict[str, float]:
    status, exposition = request(f"{url}/metrics", method="GET")
    assert status == 200
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name.startswith("catalogue_")
    }


def add_setlist(db) -> None:
    with db.cursor() as cursor:
        cursor.execute(
            "INSERT INTO setlists (source, source_id, title) VALUES ('test', %s, 'A set')",
            (uuid.uuid4().hex,),
        )


def test_catalogue_gauges_on_the_services_metrics(fakes: Fakes, db_url: str, db) -> None:
    store(
        db_url,
        {"artist": "Deadmau5", "title": "Strobe"},
        {"artist": "Eric Prydz", "title": "Opus"},
        {"artist": "Nobody Knows", "title": "Unreleased Dub"},
        {"artist": "Already", "title": "Identified", "isrc": "GBAYE2699999"},
    )
    add_setlist(db)
    with running_service(db_url, fakes.config(catalogue_metrics_ttl=0)) as service:
        assert gauges(service.url) == {
            "catalogue_tracks": 4,
            "catalogue_tracks_with_isrc": 1,
            "catalogue_tracks_with_spotify_id": 0,
            "catalogue_tracks_pending_enrichment": 3,
            "catalogue_setlists": 1,
        }
        assert request(f"{service.url}/enrich/batch", PLAN_BODY)[0] == 200
        assert gauges(service.url) == {
            "catalogue_tracks": 4,
            "catalogue_tracks_with_isrc": 3,
            "catalogue_tracks_with_spotify_id": 2,
            "catalogue_tracks_pending_enrichment": 0,
            "catalogue_setlists": 1,
        }


def test_catalogue_counts_are_reused_for_their_ttl(fakes: Fakes, db_url: str, db) -> None:
    """A scrape within the TTL costs no query: the count of a new setlist waits for the next."""
    with running_service(db_url, fakes.config(catalogue_metrics_ttl=3600)) as service:
        assert gauges(service.url)["catalogue_setlists"] == 0
        add_setlist(db)
        assert gauges(service.url)["catalogue_setlists"] == 0
    with running_service(db_url, fakes.config(catalogue_metrics_ttl=0)) as service:
        assert gauges(service.url)["catalogue_setlists"] == 1


def test_a_lost_database_leaves_the_metrics_answering(fakes: Fakes) -> None:
    config = fakes.config(catalogue_metrics_ttl=0)
    broken = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"
    service = EnrichmentService(
        ("127.0.0.1", 0), Backfill(broken, config, Enricher.from_config(config, None))
    )
    with serving(service):
        status, exposition = request(f"{service.url}/metrics", method="GET")
    assert status == 200 and "enrichment_requests_total" in exposition
    assert "catalogue_tracks " not in exposition


def test_a_rate_limit_store_that_is_down_puts_tracks_off_and_fails_none(
    fakes: Fakes, db_url: str, db, tmp_path: Path
) -> None:
    """Redis down is "the source is unavailable now": no track parked as failed for hours."""
    store(
        db_url,
        {"artist": "Deadmau5", "title": "Strobe"},
        {"artist": "Eric Prydz", "title": "Opus"},
    )
    server = RedisProcess(tmp_path / "redis", persistent=False).start()
    config = replace(
        fakes.config(spotify=False),
        redis_url=server.url,
        redis_key_prefix=f"test:{uuid.uuid4().hex}:",
    )
    limiters = shared_limiters(config, db_url)
    backfill = Backfill(db_url, config, Enricher.from_config(config, None, limiters))

    def put_off() -> float:
        sample = REGISTRY.get_sample_value(
            "enrichment_rate_limit_unavailable_total", {"source": "musicbrainz"}
        )
        return sample or 0.0

    before = put_off()
    try:
        server.kill()
        down = backfill.run(max_tracks=10)
        assert (down.tried, down.failed, down.deferred) == (0, 0, 2)
        assert put_off() - before == 2
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT enrichment_status, enrichment_checked_at, enrichment_claimed_by"
                " FROM tracks ORDER BY title"
            )
            assert cursor.fetchall() == [("pending", None, None)] * 2  # claimable at once
        server.start()
        back = backfill.run(max_tracks=10)
        assert (back.tried, back.enriched, back.deferred) == (2, 2, 0)
    finally:
        for limiter in limiters.values():
            limiter.close()
        server.kill()
