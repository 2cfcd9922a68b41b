"""deploy/grafana: the dashboard is a well-formed Grafana dashboard whose queries name only
metrics that exist, and it shows every metric the project defines. (Grafana is not packaged in
Debian; the queries themselves run through a real Prometheus in test_prometheus_e2e.)"""

from __future__ import annotations

import json

import yaml
from prometheus_client import REGISTRY

from scrapers import metrics
from tests.prometheus_servers import (
    DASHBOARD,
    REPO,
    metric_names,
    panel_queries,
    recording_rules,
    series_read,
)

PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
# Series that Prometheus or the Pushgateway add themselves.
BUILT_IN = {"up", "push_time_seconds"}
# The catalogue gauges the enrichment service exports (issue 14, item 4), graphed by name.
CATALOGUE_GAUGES = {
    "catalogue_tracks",
    "catalogue_tracks_with_isrc",
    "catalogue_tracks_with_spotify_id",
    "catalogue_tracks_pending_enrichment",
    "catalogue_setlists",
}


def project_series() -> set[str]:
    """Every sample name the project's metrics can produce (``_total``, ``_bucket``, …)."""
    names = set()
    for registry in (REGISTRY, metrics.MIGRATION_REGISTRY):
        for family in registry.collect():
            names.update(sample.name for sample in family.samples)
            names.add(family.name + "_total" if family.type == "counter" else family.name)
            if family.type == "histogram":
                names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return names


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "stat"}
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]


def test_provisioning_points_the_panels_at_the_provisioned_datasource() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "tracklists.yml").read_text())
    [datasource] = datasources["datasources"]
    assert datasource["type"] == "prometheus"
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "tracklists.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    dashboard = json.loads(DASHBOARD.read_text())
    used = {
        json.dumps(source)
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for source in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
    }
    assert used == {json.dumps({"type": "prometheus", "uid": datasource["uid"]})}


def test_every_query_reads_series_that_exist() -> None:
    known = project_series() | set(recording_rules()) | BUILT_IN | CATALOGUE_GAUGES
    unknown = {
        title: metric_names(expr) - known
        for title, expr in panel_queries().items()
        if metric_names(expr) - known
    }
    assert unknown == {}
    for expr in recording_rules().values():
        assert metric_names(expr) <= project_series() | CATALOGUE_GAUGES


def test_every_project_metric_is_on_the_dashboard() -> None:
    shown = {name for expr in panel_queries().values() for name in series_read(expr)}
    families = {
        family.name
        for registry in (REGISTRY, metrics.MIGRATION_REGISTRY)
        for family in registry.collect()
        if not family.name.startswith(("process_", "python_"))
    }
    missing = {f for f in families if not any(s.startswith(f) for s in shown)}
    assert missing == set()


def test_metric_names_reads_promql() -> None:
    expr = 'sum by (job, le) (rate(batch_flush_seconds_bucket{job="x"}[5m])) / tier:a:rate5m'
    assert metric_names(expr) == {"batch_flush_seconds_bucket", "tier:a:rate5m"}
