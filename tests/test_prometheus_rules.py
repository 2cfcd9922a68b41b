"""deploy/prometheus: promtool accepts the configuration, every alert's unit tests pass, and
``migrate.py`` pushes its gauge to a real Pushgateway."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from scrapers.db.server import migrations
from tests.prometheus_servers import DEPLOY, REPO, binary, get, pushgateway

ALERT_TESTS = DEPLOY / "tests" / "alerts_test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_checks_the_configuration_and_its_rule_files() -> None:
    checked = promtool("check", "config", str(DEPLOY / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2 rule files found" in checked.stdout + checked.stderr


def test_alert_unit_tests_pass() -> None:
    tested = promtool("test", "rules", str(ALERT_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    rules = yaml.safe_load((DEPLOY / "rules" / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    cases = [
        case
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert alerts - fired == set()
    assert alerts - quiet == set()


def migrate(db_url: str, gateway: str, *args: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "PROMETHEUS_PUSHGATEWAY_URL": gateway}
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "migrate.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_migrate_pushes_pending_migrations_to_the_pushgateway(make_database) -> None:
    db_url = make_database("")
    with pushgateway() as gateway:
        migrate(db_url, gateway, "up")
        assert 'migrations_pending{instance="",job="tracklists_migrate"} 0' in get(
            f"{gateway}/metrics"
        )
        migrate(db_url, gateway, "down", migrations.discover()[-1].name)
        pushed = get(f"{gateway}/metrics")
    assert 'migrations_pending{instance="",job="tracklists_migrate"} 1' in pushed
    # Only the migration gauge: not the crawl's or the importer's counters.
    assert 'tracks_upsert_isrc_total{instance="",job="tracklists_migrate"}' not in pushed


def test_migrate_with_an_unreachable_pushgateway_still_succeeds(make_database) -> None:
    """An unreachable gateway is a warning, never a failed migration."""
    db_url = make_database("")
    env = {**os.environ, "DATABASE_URL": db_url, "PROMETHEUS_PUSHGATEWAY_URL": "127.0.0.1:9"}
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "migrate.py"), "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "warning: metrics not pushed to 127.0.0.1:9" in done.stderr
