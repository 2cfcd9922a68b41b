"""A real Prometheus scrapes a real crawl, the enrichment service and a Pushgateway.

Prometheus runs ``deploy/prometheus/prometheus.yml`` with its rules, the targets moved to this
test's free ports and a 1 s scrape interval. It scrapes ``scrapy crawl`` of a local copy of the
site, ``scripts/enrichment_service.py`` over the fake sources, and a Pushgateway that
``import_tracks.py``, ``migrate.py`` and the crawl push to when they end. The counters read back
through Prometheus's HTTP API must match the database, and every query of the Grafana dashboard
must return data.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
import yaml

from scrapers.db.server.connection import connect
from tests.fakes.fixtures import Fakes
from tests.prometheus_servers import (
    DEPLOY,
    REPO,
    binary,
    free_port,
    get,
    panel_queries,
    prometheus,
    pushgateway,
    query,
)
from tests.test_spider_crawl import FIXTURES, FakeSite, site  # noqa: F401  (site: fixture)

pytestmark = pytest.mark.slow

# Strobe and Opus are in the fakes' catalogue (enriched by the service), Levels comes with its
# ISRC; one invalid ISRC, one row without artist, and a Spotify ID claimed by two ISRCs.
CATALOGUE_CSV = """artist,title,isrc,spotify_id
Deadmau5,Strobe,,
Eric Prydz,Opus,,
Avicii,Levels,GBAYE2600003,
Nobody Known,Unheard,not-an-isrc,
,No Artist,,
Pair One,First,GBAYE2600011,4uLU6hMCjMI75M1A2tKUQC
Pair Two,Second,GBAYE2600012,4uLU6hMCjMI75M1A2tKUQC
Spotify Only,Track,,6rqhFgbbKwnb9MLmUQDhG6
"""
IMPORT_ISRC_ROWS = 3


def scrape_config(tmp_path: Path, crawl: int, service: int, gateway: int, web: int) -> Path:
    """The deployed configuration, pointed at this test's ports and scraping every second."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(DEPLOY / path) for path in config["rule_files"]]
    ports = {
        "tracklists_crawl": crawl,
        "tracklists_enrichment": service,
        "tracklists_web": web,
        "pushgateway": gateway,
    }
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports.pop(job['job_name'])}"]}]
    assert ports == {}, "a job of the deployed configuration is not scraped by this test"
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@contextmanager
def enrichment_service(port: int, env: dict[str, str], fakes: Fakes) -> Iterator[str]:
    """The service over the fake MusicBrainz and Deezer; Spotify's address is dead, so its
    circuit opens after one failure."""
    overrides = {
        "ENRICHMENT_MUSICBRAINZ_URL": fakes.musicbrainz.url,
        "ENRICHMENT_DEEZER_URL": fakes.deezer.url,
        "ENRICHMENT_SPOTIFY_API_URL": "http://127.0.0.1:9",
        "ENRICHMENT_SPOTIFY_ACCOUNTS_URL": "http://127.0.0.1:9",
        "ENRICHMENT_RATES": json.dumps({"musicbrainz": 5, "deezer": 20, "spotify": 20}),
        "ENRICHMENT_MAX_ATTEMPTS": "1",
        "ENRICHMENT_BREAKER_FAILURES": "1",
        "ENRICHMENT_RETRY_FAILED_AFTER": "0",
    }
    command = [sys.executable, str(REPO / "scripts" / "enrichment_service.py")]
    command += ["--port", str(port)]
    for name, value in overrides.items():
        command += ["-s", f"{name}={value}"]
    service_env = env | {"SPOTIFY_CLIENT_ID": "id", "SPOTIFY_CLIENT_SECRET": "secret"}
    with running(command, service_env, f"http://127.0.0.1:{port}", "/health") as url:
        yield url


@contextmanager
def web_explorer(port: int, env: dict[str, str]) -> Iterator[str]:
    """``scripts/web.py`` on ``port``, reading the test's database."""
    command = [sys.executable, str(REPO / "scripts" / "web.py"), "--port", str(port)]
    with running(command, env, f"http://127.0.0.1:{port}", "/metrics") as url:
        yield url


@contextmanager
def running(command: list[str], env: dict[str, str], url: str, probe: str) -> Iterator[str]:
    """``command`` started, once ``url + probe`` answers; SIGTERM at the end."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                get(url + probe, timeout=1)
                break
            except OSError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, f"{command[1]} did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def enrich_batch(url: str) -> dict[str, int]:
    request = urllib.request.Request(
        f"{url}/enrich/batch",
        data=b'{"max_tracks": 100}',
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def value(prometheus_url: str, promql: str) -> float:
    [sample] = query(prometheus_url, promql)
    return float(sample["value"][1])


def wait_for(prometheus_url: str, promql: str, expected: float, deadline_s: float = 30) -> None:
    """Until Prometheus has scraped ``promql`` at ``expected`` (scrapes are every second)."""
    deadline = time.monotonic() + deadline_s
    while True:
        results = query(prometheus_url, promql)
        if results and float(results[0]["value"][1]) == expected:
            return
        assert time.monotonic() < deadline, f"{promql}: {results}, expected {expected}"
        time.sleep(0.5)


def firing(prometheus_url: str) -> set[tuple[str, str]]:
    """(alert name, its job / source / reason labels) of every firing alert."""
    alerts = json.loads(get(f"{prometheus_url}/api/v1/alerts"))["data"]["alerts"]
    return {
        (alert["labels"]["alertname"], alert["labels"].get("reason") or alert["labels"]["source"])
        for alert in alerts
        if alert["state"] == "firing" and {"reason", "source"} & alert["labels"].keys()
    }


def series_with_data(prometheus_url: str, promql: str, start: float) -> int:
    """How many series ``promql`` yields over the test's time range, as a graph would show."""
    parameters = {"query": promql, "start": start, "end": time.time(), "step": 1}
    answer = json.loads(
        get(f"{prometheus_url}/api/v1/query_range?{urllib.parse.urlencode(parameters)}")
    )
    assert answer["status"] == "success", answer
    return sum(
        1
        for series in answer["data"]["result"]
        if any(point[1] not in ("NaN", "+Inf", "-Inf") for point in series["values"])
    )


def test_prometheus_scrapes_the_crawl_the_service_and_the_pushgateway(
    make_database,
    fakes: Fakes,
    site: FakeSite,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    for tool in ("prometheus", "prometheus-pushgateway"):
        binary(tool)
    db_url = make_database()
    crawl_port, service_port, web_port = free_port(), free_port(), free_port()
    ip_limit = (FIXTURES / "blocked_ip_limit.html").read_bytes()
    site.tracklist_answers = lambda tracklist_id, attempt: (
        ip_limit if (tracklist_id, attempt) == ("9demo02x", 0) else site.demo_page(tracklist_id, 0)
    )
    csv = tmp_path / "catalogue.csv"
    csv.write_text(CATALOGUE_CSV)

    with pushgateway() as gateway:
        gateway_port = int(gateway.rsplit(":", 1)[1])
        config = scrape_config(tmp_path, crawl_port, service_port, gateway_port, web_port)
        with prometheus(config, tmp_path / "tsdb") as prom:
            start = time.time()
            # Prometheus hands new targets to its scrapers a few seconds after it starts.
            wait_for(prom, "count(up)", 4)
            env = {**os.environ, "DATABASE_URL": db_url, "PROMETHEUS_PUSHGATEWAY_URL": gateway}
            env = {k: v for k, v in env.items() if not k.startswith("SPOTIFY_")}

            # Batch jobs: the import and migrate.py push when they end.
            run([sys.executable, str(REPO / "scripts" / "import_tracks.py"), str(csv)], env)
            run([sys.executable, str(REPO / "scripts" / "migrate.py"), "status"], env)

            # The crawl, scraped while it runs and pushing its final values when it ends.
            crawl = [sys.executable, "-m", "scrapy", "crawl", "1001tracklists"]
            crawl += ["-a", f"start_urls={site.base}/dj/novaharbor/index.html"]
            for name, setting in {
                "TRACKLISTS_SITE_URL": site.base,
                "PROMETHEUS_PORT": crawl_port,
                "DOWNLOAD_DELAY": 1.0,
                "DOWNLOAD_DELAY_JITTER": 0,
                "AUTOTHROTTLE_ENABLED": False,
                "BLOCKED_BACKOFF_BASE": 0.5,
                "DATABASE_BATCH_MAX_LATENCY": 0.5,
                "TELNETCONSOLE_ENABLED": False,
            }.items():
                crawl += ["-s", f"{name}={setting}"]
            run(crawl, env)

            # The web explorer, read while Prometheus scrapes it: a page, its API, a search.
            with web_explorer(web_port, env) as explorer:
                pages = ("/", "/top", "/api/search?q=strobe", "/api/top")
                for path in pages:
                    get(explorer + path)
                # Prometheus's own scrapes of /metrics count too: at least the pages.
                requests = 'sum(explorer_request_duration_seconds_count{job="tracklists_web"})'
                wait_for(prom, f"{requests} >= bool {len(pages)}", 1)
                samples = (
                    'count_over_time(explorer_request_duration_seconds_count{route="/top"}[5m])'
                )
                wait_for(prom, f"min({samples}) >= bool 2", 1)

            with enrichment_service(service_port, env, fakes) as service:
                first = enrich_batch(service)
                second = enrich_batch(service)  # retries not_found tracks: cache hits
                wait_for(
                    prom,
                    'sum(enrichment_tracks_total{job="tracklists_enrichment"})',
                    first["tried"] + second["tried"],
                )
                # rate() needs two samples of the series the last batch created.
                wait_for(prom, "min(count_over_time(enrichment_cache_hits_total[5m])) >= bool 2", 1)

            with closing(connect(db_url, autocommit=True)) as db, db.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM setlist_tracks WHERE track_id IS NOT NULL")
                [crawl_tracks] = cursor.fetchone()
                cursor.execute("SELECT count(*) FROM rejected_items")
                [rejected] = cursor.fetchone()

            # Counters read back through Prometheus equal what the database holds.
            wait_for(prom, 'tracks_upsert_isrc_total{job="tracklists_import"}', IMPORT_ISRC_ROWS)
            wait_for(prom, 'sum(items_rejected_total{job="tracklists_import"})', rejected)
            wait_for(prom, 'migrations_pending{job="tracklists_migrate"}', 0)
            pushed_crawl = 'tracks_upsert_title_total{job="tracklists_crawl",instance=""}'
            wait_for(prom, pushed_crawl, crawl_tracks)
            live = f'tracks_upsert_title_total{{instance="127.0.0.1:{crawl_port}"}}'
            assert 0 < value(prom, f"max_over_time({live}[5m])") <= crawl_tracks
            blocked = 'crawl_blocked_pages_total{job="tracklists_crawl",kind="ip_limit"}'
            assert value(prom, f"max({blocked})") == 1
            assert value(prom, 'max(push_time_seconds{job="tracklists_import"})') >= start - 1
            # Over the range: the service has stopped, and its series go stale at the next scrape.
            refused = 'max_over_time(enrichment_circuit_open_total{source="spotify"}[5m])'
            assert value(prom, f"sum({refused})") > 0

            # The rules run on what was scraped: the import's rejection, Spotify's open circuit.
            expected_alerts = {
                ("ItemsRejected", "missing_artist"),
                ("EnrichmentSourceCircuitOpen", "spotify"),
            }
            deadline = time.monotonic() + 30
            while not expected_alerts <= firing(prom):
                assert time.monotonic() < deadline, firing(prom)
                time.sleep(0.5)
            time.sleep(3)  # a few evaluations of the recording rules over the final values
            empty = {
                title: expr
                for title, expr in panel_queries().items()
                if series_with_data(prom, expr, start) == 0
            }

    assert (crawl_tracks, rejected) == (24, 1)
    assert first["enriched"] >= 2 and second["tried"] > 0
    # Every panel shows data, the catalogue gauges the enrichment service serves included.
    assert empty == {}, empty
