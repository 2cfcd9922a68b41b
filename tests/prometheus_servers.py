"""Real Prometheus and Pushgateway servers for the tests: Debian's ``prometheus`` and
``prometheus-pushgateway`` packages, each instance on a free port of 127.0.0.1 with its own
temporary storage, stopped at the end.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy" / "prometheus"
MISSING = (
    "{} is not installed: `apt-get install prometheus prometheus-pushgateway` "
    "(Debian; .ci/run installs them when promtool is missing)"
)


def binary(name: str) -> str:
    """The path of a Prometheus tool, or skip the test saying how to get it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(MISSING.format(name))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def wait_until_ready(process: subprocess.Popen[str], url: str, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            get(url, timeout=1)
            return
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None:
                raise AssertionError(f"{process.args[0]} exited: {process.stdout.read()}") from None
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.1)


@contextmanager
def running(command: list[str], ready_url: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_ready(process, ready_url)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def pushgateway() -> Iterator[str]:
    """A Pushgateway on 127.0.0.1; yields its URL. It keeps pushes in memory only."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [binary("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{port}"]
    with running(command, f"{url}/-/ready"):
        yield url


@contextmanager
def prometheus(config: Path, storage: Path) -> Iterator[str]:
    """A Prometheus server reading ``config``, storing under ``storage``; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with running(command, f"{url}/-/ready"):
        yield url


def query(prometheus_url: str, promql: str) -> list[dict[str, Any]]:
    """The result of an instant query through Prometheus's HTTP API."""
    answer = json.loads(
        get(f"{prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    )
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "tracklists.json"


def panel_queries() -> dict[str, str]:
    """Every query of the Grafana dashboard, keyed ``panel title / refId``."""
    dashboard = json.loads(DASHBOARD.read_text())
    return {
        f"{panel['title']} / {target['refId']}": target["expr"]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    }


KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (not functions, labels or keywords)."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    names = re.findall(r"\b[a-zA-Z_:][\w:]*\b(?!\s*\()", expr)
    return {name for name in names if name not in KEYWORDS}


def recording_rules() -> dict[str, str]:
    """Each recorded series of deploy/prometheus/rules/recording.yml and its expression."""
    groups = yaml.safe_load((DEPLOY / "rules" / "recording.yml").read_text())["groups"]
    return {rule["record"]: rule["expr"] for group in groups for rule in group["rules"]}


def series_read(expr: str) -> set[str]:
    """The scraped series an expression reads, through the recording rules it uses."""
    rules = recording_rules()
    names: set[str] = set()
    for name in metric_names(expr):
        names |= metric_names(rules[name]) if name in rules else {name}
    return names
