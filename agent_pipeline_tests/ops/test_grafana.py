"""Grafana provisioning and the dashboard: a fixed datasource uid the dashboard uses, a file provider pointing at
where compose mounts the dashboards, a dashboard that satisfies Grafana's model, and every metric it reads is one
we export (a panel that shows "No data" is a bug)."""

import re

import yaml

from agent_pipeline.metrics.spec import exported_series_names
from agent_pipeline_tests.ops.promql import OPS, dashboard, dashboard_queries, metric_names

PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "text", "row", "piechart"}
GATEWAY_SERIES = {"push_time_seconds", "push_failure_time_seconds"}


def _datasource():
    (ds,) = yaml.safe_load((OPS / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"]
    return ds


def _check_type(obj, key, typ, where):
    assert key in obj, f"{where}: missing {key!r}"
    assert isinstance(obj[key], typ) and not isinstance(obj[key], bool), f"{where}: {key!r} must be {typ.__name__}"


def test_datasource_has_a_fixed_uid_and_points_at_prometheus():
    ds = _datasource()
    assert ds["uid"] == "agent-pipeline-prometheus" and ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090" and ds["access"] == "proxy"


def test_dashboards_provider_reads_the_mounted_folder():
    (prov,) = yaml.safe_load((OPS / "grafana/provisioning/dashboards/agent_pipeline.yml").read_text())["providers"]
    assert prov["type"] == "file" and prov["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_satisfies_the_grafana_dashboard_model():
    d = dashboard()
    for key, typ in (("uid", str), ("title", str), ("schemaVersion", int), ("panels", list), ("time", dict),
                     ("templating", dict), ("tags", list)):
        _check_type(d, key, typ, "dashboard")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", d["uid"])
    assert d["schemaVersion"] >= 36
    ids, cells = set(), set()
    for p in d["panels"]:
        where = f"panel {p.get('title')!r}"
        for key, typ in (("id", int), ("type", str), ("title", str), ("gridPos", dict), ("targets", list),
                         ("datasource", dict)):
            _check_type(p, key, typ, where)
        assert p["id"] not in ids, f"{where}: duplicate id"
        ids.add(p["id"])
        assert p["type"] in PANEL_TYPES, where
        assert p.get("description"), f"{where}: no description"
        g = p["gridPos"]
        assert all(isinstance(g[k], int) and g[k] >= 0 for k in "xywh") and g["w"] > 0 and g["h"] > 0
        assert g["x"] + g["w"] <= 24, f"{where}: wider than the grid"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{where}: overlaps another panel"
                cells.add((x, y))
        assert p["targets"], f"{where}: no queries"
        refs = [t["refId"] for t in p["targets"]]
        assert len(set(refs)) == len(refs), f"{where}: duplicate refId"
        for t in [p, *p["targets"]]:
            assert t["datasource"] == {"type": "prometheus", "uid": _datasource()["uid"]}, where
        assert all(isinstance(t["expr"], str) and t["expr"].strip() for t in p["targets"]), where
        assert "$" not in "".join(t["expr"] for t in p["targets"]), f"{where}: template variables are not defined"


def test_dashboard_has_the_seed_panels_and_the_loops_panels():
    titles = " | ".join(p["title"].lower() for p in dashboard()["panels"])
    for needle in ("runs rate", "error rate", "p95 latency", "average reward", "cost", "win rate", "quota",
                   "capital", "kill switch", "denials by reason", "pnl", "orders"):
        assert needle in titles, needle
    exprs = " ".join(e for _, e in dashboard_queries())
    assert "histogram_quantile(0.95, sum by (le, agent) (rate(agent_latency_seconds_bucket[5m])))" in exprs
    assert "agent_latency_ms" not in exprs


def test_every_metric_the_dashboard_reads_is_exported():
    for where, expr in dashboard_queries():
        names = metric_names(expr)
        assert names, (where, expr)
        unknown = names - exported_series_names() - GATEWAY_SERIES
        assert not unknown, (where, unknown)


def test_threshold_split():
    from agent_pipeline_tests.ops.promql import split_threshold

    assert split_threshold("sum by (a) (x{b=\"c>d\"}) / y > 0.1") == ('sum by (a) (x{b=\"c>d\"}) / y', ">", "0.1")
    assert split_threshold("time() - max(t) > 900 unless on (agent) max by (agent) (q) == 0") == \
        ("time() - max(t)", ">", "900")


def test_metric_name_extraction():
    assert metric_names('sum by (le, agent) (rate(agent_latency_seconds_bucket{job="x"}[5m]))') == \
        {"agent_latency_seconds_bucket"}
    assert metric_names("time() - max(push_time_seconds) > 1e3") == {"push_time_seconds"}
