"""A setting the user gave that cannot be used stops ``scrapy crawl`` before it crawls.

Each case runs the real command in a child process with the project's own spider and every
component it loads (enrichment and database pipelines, metrics server, block-page middleware).
Scrapy alone would disable a component that raised ``NotConfigured`` with one WARNING and crawl
on, storing nothing; here the answer is one line naming the setting, and exit status 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.exceptions import UsageError

from tests.test_database_pipeline import query

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "tests" / "fixtures" / "1001tracklists" / "demo_tracklist.html"
UNREACHABLE = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1"


class RefusingSpider(scrapy.Spider):
    """Refuses its argument the way a spider should: a ``UsageError``."""

    name = "refusing"

    def __init__(self, size: str = "1", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not size.isdigit():
            raise UsageError(f"size: not a whole number: {size!r}")


def crawl(settings: dict[str, str | None], spool: Path, db_url: str = UNREACHABLE, **env: str):
    """Run the crawl of the demo page; a setting given as None is not passed at all."""
    given = {"DOWNLOAD_DELAY": "0", "AUTOTHROTTLE_ENABLED": "False", "PROMETHEUS_PORT": "0",
             "DATABASE_SPOOL_DIR": str(spool), **settings}  # fmt: skip
    command = [sys.executable, "-m", "scrapy", "crawl", "1001tracklists"]
    command += ["-a", f"start_urls={DEMO.as_uri()}"]
    for name, value in given.items():
        if value is not None:
            command += ["-s", f"{name}={value}"]
    return subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_BATCH_SIZE", "0", "DATABASE_BATCH_SIZE must be a whole number of at least 1"),
        ("DATABASE_BATCH_SIZE", "lots", "DATABASE_BATCH_SIZE must be a whole number"),
        ("DATABASE_RETRY_TIMEOUT", "-1", "DATABASE_RETRY_TIMEOUT must be a number of seconds >= 0"),
        ("DATABASE_BATCH_MAX_LATENCY", "soon", "DATABASE_BATCH_MAX_LATENCY must be a number of"),
        ("DATABASE_PROBE_INTERVAL", "nan", "DATABASE_PROBE_INTERVAL must be a number of seconds"),
        ("PROMETHEUS_PORT", "70000", "PROMETHEUS_PORT must be a whole number of at least 0 and"),
        ("PROMETHEUS_ENABLED", "maybe", "PROMETHEUS_ENABLED must be true or false"),
        ("PROMETHEUS_PUSHGATEWAY_URL", "ftp://u:secret@h/", "PROMETHEUS_PUSHGATEWAY_URL must be"),
        ("ENRICHMENT_CONCURRENCY", "0", "ENRICHMENT_CONCURRENCY must be a whole number of at"),
        ("ENRICHMENT_RATES", '{"musicbrainz": "fast"}', "ENRICHMENT_RATES['musicbrainz'] must"),
        ("ENRICHMENT_RATES", "{musicbrainz: 1}", "ENRICHMENT_RATES must be a JSON object"),
        ("ENRICHMENT_MODE", "sometimes", "ENRICHMENT_MODE must be one of"),
        ("BLOCKED_PAGES_MAX_IN_ROW", "0", "BLOCKED_PAGES_MAX_IN_ROW must be a whole number of at"),
        ("BLOCKED_BACKOFF_BASE", "-5", "BLOCKED_BACKOFF_BASE must be a number of seconds >= 0"),
        ("TRACKLISTS_SITE_URL", "ftp://example.org", "TRACKLISTS_SITE_URL must be an http(s) URL"),
        ("CRAWL_MAX_LISTING_PAGES", "0", "CRAWL_MAX_LISTING_PAGES must be a whole number of at"),
    ],
)
def test_an_invalid_setting_stops_the_crawl_with_one_clear_line(
    name: str, value: str, message: str, tmp_path: Path
) -> None:
    done = crawl({name: value}, tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"scrapy crawl: invalid setting: {message}"), done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "secret" not in done.stderr
    assert "Spider opened" not in done.stderr


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"CRAWL_REFRESH": "sometimes"}, "CRAWL_REFRESH must be one of due, all, none"),
        ({"CRAWL_REFRESH_RECENT_DAYS": "-3"}, "CRAWL_REFRESH_RECENT_DAYS must be a number of days"),
        ({"FRONTIER_HEARTBEAT": "soon"}, "FRONTIER_HEARTBEAT must be a number of seconds > 0"),
        ({"MAX_IDLE_TIME_BEFORE_CLOSE": "-1"}, "MAX_IDLE_TIME_BEFORE_CLOSE must be a number of"),
        ({"JOBDIR": "crawls/run1"}, "JOBDIR must be unset with REDIS_URL"),
        ({"SCHEDULER_FLUSH_ON_START": "True"}, "SCHEDULER_FLUSH_ON_START must be off with a"),
        ({"FRONTIER_NAME": "a b"}, "FRONTIER_NAME must be letters, digits and ._- only"),
    ],
)
def test_an_invalid_crawl_or_frontier_setting_stops_the_crawl_with_one_clear_line(
    given: dict[str, str], message: str, tmp_path: Path, redis_server_url: str, frontier_name: str
) -> None:
    shared = {"REDIS_URL": redis_server_url, "FRONTIER_NAME": frontier_name}
    done = crawl({**shared, **given}, tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"scrapy crawl: invalid setting: {message}"), done.stderr[-3000:]
    assert "Traceback" not in done.stderr


def test_a_frontier_redis_that_does_not_answer_stops_the_crawl_with_one_line(
    tmp_path: Path,
) -> None:
    done = crawl({"REDIS_URL": "redis://:secret@127.0.0.1:9/0"}, tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("scrapy crawl: the shared frontier's Redis (REDIS_URL) does not answer")
    assert "Traceback" not in done.stderr
    assert "secret" not in done.stderr


@pytest.mark.parametrize("name", ["PROMETHEUS_PORT", "ENRICHMENT_SERVICE_PORT"])
def test_an_invalid_value_from_the_environment_is_answered_the_same_way(
    tmp_path: Path, name: str
) -> None:
    done = crawl({name: None}, tmp_path, **{name: "ninety"})
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f"scrapy crawl: invalid setting: {name} must be a whole number of at least 0"
        " and at most 65535, got 'ninety'"
    )


def test_switching_a_component_off_on_purpose_still_crawls(db_url: str, tmp_path: Path) -> None:
    """``NotConfigured`` stays the answer to "off": the crawl runs and stores its items."""
    pipelines = {"scrapers.pipelines.database_pipeline.DatabasePipeline": 800}
    settings = {"PROMETHEUS_ENABLED": "False", "ITEM_PIPELINES": json.dumps(pipelines)}
    done = crawl(settings, tmp_path, db_url=db_url)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Disabled scrapers.extensions.metrics_server.MetricsServer" in done.stderr
    assert query(db_url, "SELECT count(*) FROM setlist_tracks") == [(10,)]


def test_a_spider_refusing_its_argument_is_a_usage_error() -> None:
    command = [sys.executable, "-m", "scrapy", "crawl", "refusing", "-a", "size=big",
               "-s", "SPIDER_MODULES=tests.test_invalid_settings"]  # fmt: skip
    done = subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": UNREACHABLE, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == "scrapy crawl: size: not a whole number: 'big'"


MALFORMED_REDIS_URLS = {
    # An unencoded "/" in the password: redis-py's own message quoted "Tops3cr" as the port.
    "redis://:Tops3cr/t@127.0.0.1:6379/0": "REDIS_URL is not a valid Redis URL: redis://***@",
    "http://user:Tops3cr@127.0.0.1:6379/0": "REDIS_URL must be a redis://, rediss:// or unix://",
}
REDIS_COMMANDS = {
    "crawl": [sys.executable, "-m", "scrapy", "crawl", "1001tracklists",
              "-a", f"start_urls={DEMO.as_uri()}", "-s", "PROMETHEUS_ENABLED=False"],
    "frontier show": [sys.executable, "-m", "scrapy", "frontier", "show"],
    "enrichment service": [sys.executable, "scripts/enrichment_service.py", "--port", "0"],
}  # fmt: skip


def run_with_redis_url(command: list[str], redis_url: str, db_url: str = UNREACHABLE):
    return subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": str(REPO), "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("url", MALFORMED_REDIS_URLS)
@pytest.mark.parametrize("command", REDIS_COMMANDS)
def test_a_malformed_redis_url_from_the_environment_is_one_line_without_its_password(
    command: str, url: str, db_url: str
) -> None:
    done = run_with_redis_url(REDIS_COMMANDS[command], url, db_url)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "Tops3cr" not in done.stdout + done.stderr
    assert MALFORMED_REDIS_URLS[url] in done.stderr.strip().splitlines()[-1], done.stderr[-3000:]


def test_the_crawl_reads_redis_url_from_the_environment_and_s_overrides_it(
    tmp_path: Path,
) -> None:
    from_environment = crawl({}, tmp_path, REDIS_URL="redis://:Tops3cr@127.0.0.1:9/0")
    assert from_environment.returncode == 2, from_environment.stderr[-3000:]
    assert "the shared frontier's Redis (REDIS_URL) does not answer" in from_environment.stderr
    assert "Tops3cr" not in from_environment.stderr
    overridden = crawl(
        {"REDIS_URL": "redis://:Tops3cr@127.0.0.1:9/0"}, tmp_path, REDIS_URL="http://x/"
    )
    assert overridden.returncode == 2, overridden.stderr[-3000:]
    assert "does not answer" in overridden.stderr.strip().splitlines()[-1]
