"""Grafana provisioning and the dashboard: a fixed datasource uid the dashboard uses, a file provider pointing at
where compose mounts the dashboards, a dashboard that satisfies Grafana's model, every metric it reads is one we
export (a panel that shows "No data" is a bug), and the dashboard reads the way an operator needs it to: the
summary first, the kill switch red when engaged, an agent selector that every agent panel follows, units that say
what a number is, and links to the Dagster UI."""

import re

import pytest
import yaml

from agent_pipeline.metrics.spec import BY_NAME, exported_series_names
from agent_pipeline_tests.deploy.promql import (
    OPS,
    annotation_queries,
    dashboard,
    dashboard_queries,
    metric_names,
    panels,
    runnable,
    variables_used,
)

PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "text", "row", "piechart",
               "state-timeline"}
GATEWAY_SERIES = {"push_time_seconds", "push_failure_time_seconds"}
PROMETHEUS_SERIES = {"up"}
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range", "__field", "__value", "__series", "__data",
                     "__url_time_range", "__from", "__to"}
RANGE = re.compile(r"\[([^\]]+)\]")


def _datasource():
    (ds,) = yaml.safe_load((OPS / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"]
    return ds


def _check_type(obj, key, typ, where):
    assert key in obj, f"{where}: missing {key!r}"
    assert isinstance(obj[key], typ) and not isinstance(obj[key], bool), f"{where}: {key!r} must be {typ.__name__}"


def _panel(title_start: str) -> dict:
    (p,) = [p for p in panels() if p["title"].startswith(title_start)]
    return p


def grafana_colour(panel: dict, value: float | None) -> str:
    """The colour Grafana gives a stat value: a matching value mapping's colour, else the threshold step's."""
    defaults = panel["fieldConfig"]["defaults"]
    if value is None:
        return "no value: " + defaults.get("noValue", "No data")
    for mapping in defaults.get("mappings", []):
        if mapping["type"] == "value":
            hit = mapping["options"].get(f"{value:g}")
            if hit and hit.get("color"):
                return hit["color"]
    colour = None
    for step in defaults["thresholds"]["steps"]:
        if step["value"] is None or value >= step["value"]:
            colour = step["color"]
    return colour


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
                     ("templating", dict), ("tags", list), ("annotations", dict), ("links", list)):
        _check_type(d, key, typ, "dashboard")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", d["uid"])
    assert d["schemaVersion"] >= 36
    ids, cells = set(), set()
    defined = {v["name"] for v in d["templating"]["list"]} | GRAFANA_VARIABLES
    for p in panels(d):
        where = f"panel {p.get('title')!r}"
        _check_type(p, "id", int, where)
        _check_type(p, "gridPos", dict, where)
        assert p["id"] not in ids, f"{where}: duplicate id"
        ids.add(p["id"])
        assert p["type"] in PANEL_TYPES, where
        g = p["gridPos"]
        assert all(isinstance(g[k], int) and g[k] >= 0 for k in "xywh") and g["w"] > 0 and g["h"] > 0
        assert g["x"] + g["w"] <= 24, f"{where}: wider than the grid"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{where}: overlaps another panel"
                cells.add((x, y))
        assert variables_used(str(p)) <= defined, f"{where}: undefined variables {variables_used(str(p)) - defined}"
        if p["type"] == "row":
            assert isinstance(p["collapsed"], bool) and isinstance(p["panels"], list) and (g["w"], g["h"]) == (24, 1)
            assert p["collapsed"] or not p["panels"], f"{where}: an open row lists no panels of its own"
            continue
        for key, typ in (("type", str), ("title", str), ("targets", list), ("datasource", dict)):
            _check_type(p, key, typ, where)
        assert p.get("description"), f"{where}: no description"
        assert p["targets"], f"{where}: no queries"
        refs = [t["refId"] for t in p["targets"]]
        assert len(set(refs)) == len(refs), f"{where}: duplicate refId"
        for t in [p, *p["targets"]]:
            assert t["datasource"] == {"type": "prometheus", "uid": _datasource()["uid"]}, where
        assert all(isinstance(t["expr"], str) and t["expr"].strip() for t in p["targets"]), where
        assert p["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"


def test_dashboard_has_the_prototype_panels_and_the_loops_panels():
    titles = " | ".join(p["title"].lower() for p in panels())
    for needle in ("runs rate", "error rate", "p95 latency", "average reward", "cost", "win rate", "quota",
                   "capital", "kill switch", "denials by reason", "pnl", "orders"):
        assert needle in titles, needle
    exprs = " ".join(e for _, e in dashboard_queries())
    assert ('histogram_quantile(0.95, sum by (le, agent) (rate(agent_latency_seconds_bucket{agent=~"$agent"}'
            '[$__rate_interval])))') in exprs
    assert "agent_latency_ms" not in exprs


def test_every_metric_the_dashboard_reads_is_exported():
    for where, expr in dashboard_queries() + annotation_queries():
        names = metric_names(expr)
        assert names, (where, expr)
        unknown = names - exported_series_names() - GATEWAY_SERIES - PROMETHEUS_SERIES
        assert not unknown, (where, unknown)
        runnable(expr)  # every variable it uses has a value


@pytest.mark.parametrize("title", ["Kill switch", "Kill switch state"])
def test_kill_switch_panels_are_red_when_engaged_green_when_active_and_unknown_without_data(title):
    p = _panel(title) if title != "Kill switch" else next(p for p in panels() if p["title"] == "Kill switch")
    assert p["type"] == "stat" and p["options"]["colorMode"] == "background"
    assert grafana_colour(p, 0) == "green"
    engaged = [1] if title == "Kill switch" else [1, 2]  # REDUCING orange, HALTED red
    assert grafana_colour(p, engaged[-1]) == "red"
    assert grafana_colour(p, None) == "no value: UNKNOWN"
    texts = {o["text"] for m in p["fieldConfig"]["defaults"]["mappings"] for o in m["options"].values()}
    assert texts >= ({"ACTIVE", "ENGAGED"} if title == "Kill switch" else {"ACTIVE", "REDUCING", "HALTED"})


def test_the_summary_row_comes_first_and_holds_what_an_operator_checks_first():
    top = dashboard()["panels"]
    assert top[0]["type"] == "row" and top[0]["title"] == "Summary" and top[0]["gridPos"]["y"] == 0
    next_row = next(p for p in top[1:] if p["type"] == "row")
    summary = [p for p in top[1:] if p["gridPos"]["y"] < next_row["gridPos"]["y"]]
    titles = " | ".join(p["title"].lower() for p in summary)
    for needle in ("kill switch", "error rate", "pnl today", "quotas"):
        assert needle in titles, needle
    assert {p["type"] for p in summary} <= {"stat", "bargauge"}
    assert next(p for p in summary if "error rate" in p["title"].lower())["fieldConfig"]["defaults"]["unit"] == \
        "percentunit"
    rows = [p for p in top if p["type"] == "row"]
    assert len(rows) >= 4 and any(r["collapsed"] for r in rows)


def test_every_agent_series_follows_the_agent_variable():
    (agent,) = [v for v in dashboard()["templating"]["list"] if v["name"] == "agent"]
    assert agent["type"] == "query" and agent["multi"] and agent["includeAll"] and agent["allValue"] == ".*"
    assert "label_values(agent_runs_total, agent)" in agent["definition"]
    for where, expr in dashboard_queries():
        for selector in re.finditer(r"([a-z_:]+)(\{[^}]*\})?", re.sub(r'"[^"]*"', '""', expr)):
            name = selector.group(1)
            spec = BY_NAME.get(re.sub(r"_(bucket|sum|count)$", "", name)) or BY_NAME.get(name)
            if spec and "agent" in spec.labels:
                matchers = re.search(re.escape(name) + r"\{([^}]*)\}", expr)
                assert matchers and 'agent=~"$agent"' in matchers.group(1), (where, name)


def test_timeseries_ranges_follow_the_zoom_and_agents_lines_are_not_multiplied_by_windows():
    for p in panels():
        if p["type"] not in ("timeseries", "heatmap"):
            continue
        for t in p["targets"]:
            for rng in RANGE.findall(t["expr"]):
                assert rng == "$__rate_interval", (p["title"], rng)
            if "agent_reward_rolling" in t["expr"] or "agent_reward_win_rate" in t["expr"]:
                assert 'window="$window"' in t["expr"], p["title"]
        legend = p["options"]["legend"]
        if p["type"] == "timeseries":
            assert legend["displayMode"] == "table" and legend["calcs"], f"{p['title']}: list legend"


def test_units_say_what_a_number_is_and_thresholds_match_the_pipeline():
    runs = _panel("Runs rate")
    assert runs["fieldConfig"]["defaults"]["unit"] == "opm" and runs["targets"][0]["expr"].endswith("* 60")
    err = _panel("Error rate by agent")["fieldConfig"]["defaults"]
    assert err["unit"] == "percentunit" and err["custom"]["thresholdsStyle"]["mode"].startswith("line")
    assert [s["value"] for s in err["thresholds"]["steps"]] == [None, 0.1]  # the breaker's max_error_rate_5m
    fresh = _panel("Metrics freshness")
    assert fresh["fieldConfig"]["defaults"]["unit"] == "s"
    assert all("time()" in t["expr"] for t in fresh["targets"])  # seconds only: the failure count has its own panel
    assert "push_failures_total" in " ".join(t["expr"] for t in _panel("Push failures")["targets"])
    assert _panel("Cost per hour")["fieldConfig"]["defaults"]["unit"] == "currencyUSD"
    assert _panel("p95 latency")["fieldConfig"]["defaults"]["unit"] == "s"


def test_links_lead_to_the_dagster_ui_and_annotations_mark_trips_and_decisions():
    d = dashboard()
    (dagster_url,) = [v for v in d["templating"]["list"] if v["name"] == "dagster_url"]
    assert dagster_url["query"] == "http://127.0.0.1:3000"
    assert any(link["url"] == "${dagster_url}" for link in d["links"])
    runs = _panel("Runs rate")["fieldConfig"]["defaults"]["links"]
    assert any("/jobs/agent__${__field.labels.agent}" in link["url"] for link in runs)
    assert any("kill_switch_control" in link["url"] for link in _panel("Kill switch state")["links"])
    names = {name: expr for name, expr in annotation_queries()}
    assert "trading_kill_switch_engaged" in names["Kill switch engaged"]
    assert "allocator_decided_at_timestamp_seconds" in names["Allocation decisions"]


def test_threshold_split():
    from agent_pipeline_tests.deploy.promql import split_threshold

    assert split_threshold("sum by (a) (x{b=\"c>d\"}) / y > 0.1") == ('sum by (a) (x{b=\"c>d\"}) / y', ">", "0.1")
    assert split_threshold("time() - max(t) > 900 unless on (agent) max by (agent) (q) == 0") == \
        ("time() - max(t)", ">", "900")


def test_metric_name_extraction():
    assert metric_names('sum by (le, agent) (rate(agent_latency_seconds_bucket{job="x"}[5m]))') == \
        {"agent_latency_seconds_bucket"}
    assert metric_names("time() - max(push_time_seconds) > 1e3") == {"push_time_seconds"}


def test_variables_are_substituted_before_a_query_runs():
    assert runnable('rate(x{agent=~"$agent"}[$__rate_interval])') == 'rate(x{agent=~".*"}[1m])'
    assert runnable('y{window="${window}"}', {"window": "7d"}) == 'y{window="7d"}'
    with pytest.raises(KeyError, match="nope"):
        runnable("z{a=\"$nope\"}")
