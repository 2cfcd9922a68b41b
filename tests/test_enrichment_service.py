"""The enrichment service over real HTTP, against a real database and the fake sources."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scrapers.db.write.writer import BatchWriter
from scrapers.enrichment.backfill import Backfill
from scrapers.enrichment.cache import CachedAnswer, ResponseCache
from scrapers.enrichment.config import EnrichmentConfig
from scrapers.enrichment.enricher import Enricher
from scrapers.enrichment.service import EnrichmentService
from tests.conftest import REPO_ROOT
from tests.fakes.fixtures import Fakes
from tests.serving import serving

PLAN_BODY = b'{"force_refresh": false, "max_tracks": 10}'


@contextmanager
def running_service(db_url: str, config: EnrichmentConfig) -> Iterator[EnrichmentService]:
    cache = ResponseCache(db_url)
    service = EnrichmentService(
        ("127.0.0.1", 0), Backfill(db_url, config, Enricher.from_config(config, cache))
    )
    try:
        with serving(service):
            yield service
    finally:
        cache.close()


def request(
    url: str,
    body: bytes | None = None,
    *,
    method: str = "POST",
    content_type: str | None = "application/json",
) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method=method)
    if content_type and body is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as reply:
            status, raw, kind = reply.status, reply.read(), reply.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        status, raw, kind = error.code, error.read(), error.headers["Content-Type"]
    return status, json.loads(raw) if kind == "application/json" else raw.decode()


def store(db_url: str, *tracks: dict[str, Any]) -> None:
    with BatchWriter(db_url, origin="test") as writer:
        result = writer.write(list(tracks))
    assert result.stored == len(tracks)


def track_row(db, title: str) -> dict[str, Any]:
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT id::text, isrc, spotify_id, musicbrainz_id::text, bpm, duration_ms,"
            " enrichment_status, enrichment_checked_at, metadata FROM tracks WHERE title = %s",
            (title,),
        )
        names = [column.name for column in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))


@pytest.fixture
def catalogue_db(db_url: str) -> str:
    store(
        db_url,
        {"artist": "Deadmau5", "title": "Strobe"},
        {"artist": "Eric Prydz", "title": "Opus"},
        {"artist": "Twin Artist", "title": "Same Name"},
        {"artist": "Nobody Knows", "title": "Unreleased Dub"},
        {"artist": "Already", "title": "Identified", "isrc": "GBAYE2699999"},
    )
    return db_url


def test_plan_curl_batch_enriches_and_answers_counts(fakes: Fakes, catalogue_db: str, db) -> None:
    with running_service(catalogue_db, fakes.config()) as service:
        status, answer = request(f"{service.url}/enrich/batch", PLAN_BODY)
    assert status == 200
    assert answer == {
        "force_refresh": False,
        "max_tracks": 10,
        "tried": 4,
        "enriched": 2,
        "not_found": 2,
        "failed": 0,
        "conflicts": 0,
        "claims_lost": 0,
        "deferred": 0,
        "cache_purged": 0,
    }
    strobe = track_row(db, "Strobe")
    recording = fakes.catalogue[0]
    assert (strobe["isrc"], strobe["spotify_id"], strobe["musicbrainz_id"]) == (
        recording.isrc,
        recording.spotify_id,
        recording.mbid,
    )
    assert float(strobe["bpm"]) == recording.bpm
    assert strobe["enrichment_status"] == "enriched"
    assert strobe["enrichment_checked_at"] is not None
    fields = strobe["metadata"]["enrichment"]["fields"]
    assert fields["isrc"]["source"] == "musicbrainz" and fields["isrc"]["confidence"] == 1.0
    assert fields["bpm"]["source"] == "deezer"
    twin = track_row(db, "Same Name")
    assert twin["isrc"] is None and twin["enrichment_status"] == "not_found"


def test_each_batch_purges_expired_cache_answers(fakes: Fakes, db_url: str, db) -> None:
    cache = ResponseCache(db_url)
    try:
        cache.put("deezer", "/track/stale", CachedAnswer(200, {"id": 1}), -1)
        cache.put("deezer", "/track/fresh", CachedAnswer(200, {"id": 2}), 3600)
    finally:
        cache.close()
    with running_service(db_url, fakes.config()) as service:
        status, answer = request(f"{service.url}/enrich/batch", PLAN_BODY)
    assert status == 200 and answer["cache_purged"] == 1
    with db.cursor() as cursor:
        cursor.execute("SELECT request_key FROM enrichment_cache ORDER BY request_key")
        assert cursor.fetchall() == [("/track/fresh",)]


def test_second_batch_skips_recent_results_and_force_refresh_retries(
    fakes: Fakes, catalogue_db: str
) -> None:
    with running_service(catalogue_db, fakes.config()) as service:
        request(f"{service.url}/enrich/batch", PLAN_BODY)
        sent = fakes.all_api_requests()
        status, again = request(f"{service.url}/enrich/batch", PLAN_BODY)
        assert status == 200 and again["tried"] == 0
        assert fakes.all_api_requests() == sent
        status, forced = request(
            f"{service.url}/enrich/batch", b'{"force_refresh": true, "max_tracks": 10}'
        )
    assert status == 200
    assert (forced["tried"], forced["not_found"]) == (2, 2)
    assert fakes.all_api_requests() > sent, "force_refresh bypasses the cache"


def test_isrc_owned_by_another_track_is_a_recorded_conflict(fakes: Fakes, db_url: str, db) -> None:
    store(
        db_url,
        {"artist": "Avicii", "title": "Levels (Original)", "isrc": "GBAYE2600003"},
        {"artist": "Avicii", "title": "Levels"},
    )
    with running_service(db_url, fakes.config()) as service:
        status, answer = request(f"{service.url}/enrich/batch", PLAN_BODY)
    assert status == 200
    assert (answer["tried"], answer["enriched"], answer["conflicts"]) == (1, 1, 1)
    owner, levels = track_row(db, "Levels (Original)"), track_row(db, "Levels")
    assert owner["isrc"] == "GBAYE2600003"
    assert levels["isrc"] is None, "the ISRC stays with its owner"
    # No lost update: the rest of what enrichment found is stored.
    assert levels["musicbrainz_id"] == fakes.catalogue[2].mbid
    assert levels["spotify_id"] == fakes.catalogue[2].spotify_id
    assert levels["metadata"]["enrichment"]["conflicts"][0]["owner"] == owner["id"]
    assert "isrc" not in levels["metadata"]["enrichment"]["fields"]
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT identifier_type, track_id::text, other_track_id::text, incoming_value, origin"
            " FROM identifier_conflicts"
        )
        assert cursor.fetchall() == [
            ("isrc", levels["id"], owner["id"], "GBAYE2600003", "enrichment")
        ]


def test_post_without_body_uses_defaults(fakes: Fakes, catalogue_db: str) -> None:
    with running_service(catalogue_db, fakes.config()) as service:
        status, answer = request(f"{service.url}/enrich/batch", None)
    assert status == 200
    assert (answer["force_refresh"], answer["max_tracks"], answer["tried"]) == (False, 100, 4)


BAD_REQUESTS = [
    (b'{"force_refresh": false, "max_tracks": 10', "application/json", 400, "not valid JSON"),
    (b"[1, 2]", "application/json", 400, "JSON object"),
    (b'{"max_tracks": 10, "limit": 5}', "application/json", 400, "unknown field(s): limit"),
    (b'{"max_tracks": 0}', "application/json", 400, "between 1 and 10000"),
    (b'{"max_tracks": 10001}', "application/json", 400, "between 1 and 10000"),
    (b'{"max_tracks": "10"}', "application/json", 400, "max_tracks must be a JSON integer"),
    (b'{"max_tracks": 2.5}', "application/json", 400, "max_tracks must be a JSON integer"),
    (b'{"max_tracks": true}', "application/json", 400, "max_tracks must be a JSON integer"),
    (b'{"force_refresh": "no"}', "application/json", 400, "force_refresh must be a JSON boolean"),
    (b'{"force_refresh": 1}', "application/json", 400, "force_refresh must be a JSON boolean"),
    (b"\xff\xfe", "application/json", 400, "not valid JSON"),
    (b"x" * 20_000, "application/json", 400, "at most"),
    (b"max_tracks=10", "application/x-www-form-urlencoded", 415, "application/json"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "message"), BAD_REQUESTS)
def test_bad_requests_get_a_clear_error_and_run_nothing(
    fakes: Fakes, db_url: str, body: bytes, content_type: str, status: int, message: str
) -> None:
    with running_service(db_url, fakes.config()) as service:
        got, answer = request(f"{service.url}/enrich/batch", body, content_type=content_type)
    assert got == status
    assert message in answer["error"]
    assert fakes.all_api_requests() == 0


def test_wrong_method_and_unknown_path(fakes: Fakes, db_url: str) -> None:
    with running_service(db_url, fakes.config()) as service:
        assert request(f"{service.url}/enrich/batch", method="GET")[0] == 405
        assert request(f"{service.url}/health", b"{}")[0] == 405
        assert request(f"{service.url}/nope", method="GET")[0] == 404


def test_a_second_batch_in_one_worker_is_refused_another_worker_shares_the_tracks(
    fakes: Fakes, catalogue_db: str
) -> None:
    slow = fakes.config(spotify=False).with_source("musicbrainz", rate=2.0)
    with running_service(catalogue_db, slow) as service:
        first: dict[str, Any] = {}
        runner = threading.Thread(
            target=lambda: first.update(answer=request(f"{service.url}/enrich/batch", PLAN_BODY))
        )
        runner.start()
        while not fakes.musicbrainz.requests:  # the batch has claimed tracks and is looking up
            time.sleep(0.001)
        status, answer = request(f"{service.url}/enrich/batch", PLAN_BODY)
        assert (status, answer["error"]) == (409, "an enrichment batch is already running")
        # Another worker (another Backfill on the same database) runs at the same time, on the
        # tracks the first has not claimed.
        other = Backfill(catalogue_db, slow, Enricher.from_config(slow, None)).run(max_tracks=10)
        health_status, health = request(f"{service.url}/health", method="GET")
        assert health_status == 200 and health["batch_running"] is True
        runner.join()
    status, counts = first["answer"]
    assert status == 200 and counts["tried"] + other.tried == 4
    searched = [r.query.get("query") for r in fakes.musicbrainz.requests if r.query.get("query")]
    assert len(searched) == len(set(searched)) == 4, "no track looked up twice"


def test_health_and_metrics(fakes: Fakes, catalogue_db: str) -> None:
    with running_service(catalogue_db, fakes.config()) as service:
        request(f"{service.url}/enrich/batch", PLAN_BODY)
        request(f"{service.url}/enrich/batch", b'{"force_refresh": false, "max_tracks": 1}')
        health_status, health = request(f"{service.url}/health", method="GET")
        metrics_status, exposition = request(f"{service.url}/metrics", method="GET")
    assert health_status == 200
    assert health["database"] == "ok"
    assert health["sources"] == {"musicbrainz": "closed", "deezer": "closed", "spotify": "closed"}
    assert metrics_status == 200
    for sample in (
        'enrichment_requests_total{source="musicbrainz",status="200"}',
        'enrichment_requests_total{source="deezer",status="200"}',
        "enrichment_cache_hits_total",
        'enrichment_tracks_total{outcome="enriched"}',
        "enrichment_isrc_not_found_total",
        "enrichment_conflicts_total",
        "enrichment_rate_limit_wait_seconds_total",
    ):
        assert sample in exposition


def test_health_reports_a_lost_database(fakes: Fakes, db_url: str) -> None:
    config = fakes.config()
    broken = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"
    service = EnrichmentService(
        ("127.0.0.1", 0), Backfill(broken, config, Enricher.from_config(config, None))
    )
    with serving(service):
        status, health = request(f"{service.url}/health", method="GET")
        batch_status, batch = request(f"{service.url}/enrich/batch", PLAN_BODY)
    assert status == 503 and health["database"].startswith("unavailable")
    assert (batch_status, batch["error"]) == (503, "database unavailable")


def isrc_coverage(db_url: str) -> float:
    """ISRC coverage as ``verify_isrc_uniqueness.py --json`` reports it."""
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "verify_isrc_uniqueness.py"), "--json"],
        env={**os.environ, "DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode in (0, 1), completed.stderr
    report = json.loads(completed.stdout)
    [coverage] = [
        f for f in report["findings"] if f["details"].get("isrc_coverage_pct") is not None
    ]
    return coverage["details"]["isrc_coverage_pct"]


def test_isrc_coverage_rises_in_the_verify_script_after_a_batch(
    fakes: Fakes, catalogue_db: str
) -> None:
    before = isrc_coverage(catalogue_db)
    assert before == pytest.approx(20.0)  # 1 of 5 tracks
    with running_service(catalogue_db, fakes.config()) as service:
        assert request(f"{service.url}/enrich/batch", PLAN_BODY)[0] == 200
    assert isrc_coverage(catalogue_db) == pytest.approx(60.0)  # + Strobe and Opus


@dataclass
class ServiceProcess:
    url: str
    process: subprocess.Popen[str]
    log: Path

    def output(self) -> str:
        return self.log.read_text()


@contextmanager
def service_process(
    db_url: str,
    fakes: Fakes,
    log: Path,
    *args: str,
    settings: dict[str, str] | None = None,
    redis_url: str | None = None,
) -> Iterator[ServiceProcess]:
    """``scripts/enrichment_service.py`` on a free port, sources pointed at the fakes.

    Started with ``args``, ``-s`` overrides from ``settings``, and ``REDIS_URL`` only when given;
    waits until ``/health`` answers; SIGTERM at the end, which must exit 0. Output goes to
    ``log`` (a pipe left unread would block a chatty process).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    overrides = {
        "ENRICHMENT_MUSICBRAINZ_URL": fakes.musicbrainz.url,
        "ENRICHMENT_DEEZER_URL": fakes.deezer.url,
        "ENRICHMENT_RATES": json.dumps({"musicbrainz": 20, "deezer": 20}),
        **(settings or {}),
    }
    command = [sys.executable, str(REPO_ROOT / "scripts" / "enrichment_service.py")]
    command += ["--port", str(port), *args]
    for name, value in overrides.items():
        command += ["-s", f"{name}={value}"]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SPOTIFY_") and key != "REDIS_URL"
    }
    env |= {"DATABASE_URL": db_url, **({"REDIS_URL": redis_url} if redis_url else {})}
    with log.open("w") as sink:
        process = subprocess.Popen(
            command, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True
        )
    running = ServiceProcess(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                request(f"{running.url}/health", method="GET")
                break
            except urllib.error.URLError:
                assert process.poll() is None, running.output()
                assert time.monotonic() < deadline, "service did not start"
                time.sleep(0.1)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode in (0, -signal.SIGKILL), running.output()


def test_the_service_command_serves_the_plan_curl(
    fakes: Fakes, catalogue_db: str, tmp_path: Path
) -> None:
    """``scripts/enrichment_service.py`` on 127.0.0.1 and a chosen port; SIGTERM stops it."""
    with service_process(catalogue_db, fakes, tmp_path / "service.log") as service:
        status, health = request(f"{service.url}/health", method="GET")
        assert status == 200 and health["sources"] == {
            "musicbrainz": "closed",
            "deezer": "closed",
        }
        status, answer = request(f"{service.url}/enrich/batch", PLAN_BODY)
        assert status == 200 and (answer["tried"], answer["enriched"]) == (4, 2)
    assert service.process.returncode == 0
    output = service.output()
    assert f"Enrichment service on {service.url}" in output
    assert "rate limits shared in PostgreSQL" in output
    assert "ISRC not found for Twin Artist - Same Name" in output
