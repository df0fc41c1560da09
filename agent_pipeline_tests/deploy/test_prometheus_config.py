"""Prometheus config and alert rules pass promtool (check config, check rules, rule unit tests), and every
alert compares a query to a threshold on metrics we export."""

import shutil
import subprocess

import pytest
import yaml

from agent_pipeline.metrics.spec import exported_series_names
from agent_pipeline_tests.deploy.promql import OPS, RULES, alert_rules, metric_names, split_threshold

pytestmark = pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed (ops/install-system-deps.sh)")

GATEWAY_SERIES = {"push_time_seconds", "push_failure_time_seconds"}
PROMETHEUS_SERIES = {"up"}  # what Prometheus records about its own scrapes


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=OPS / "prometheus", capture_output=True, text=True, timeout=60)


def test_promtool_check_config():
    out = promtool("check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 rule files found" in out.stdout + out.stderr


def test_promtool_check_rules():
    out = promtool("check", "rules", str(RULES))
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_rule_unit_tests():
    tests = sorted((OPS / "prometheus" / "tests").glob("*.yml"))
    assert tests
    out = promtool("test", "rules", *map(str, tests))
    assert out.returncode == 0, out.stdout + out.stderr


def test_pushgateway_is_scraped_with_honor_labels():
    cfg = yaml.safe_load((OPS / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["pushgateway"]["honor_labels"] is True
    assert jobs["pushgateway"]["static_configs"][0]["targets"] == ["pushgateway:9091"]


def test_the_required_alerts_exist_and_read_exported_metrics():
    alerts = {r["alert"]: r for r in alert_rules()}
    assert {"AgentErrorRateHigh", "AgentRewardCollapse", "KillSwitchEngaged", "MetricsPushStale",
            "AgentRunsMissing", "MetricsPushAbsent", "PushgatewayDown"} <= set(alerts)
    for name, rule in alerts.items():
        query, _, threshold = split_threshold(rule["expr"])
        float(threshold)
        unknown = metric_names(rule["expr"]) - exported_series_names() - GATEWAY_SERIES - PROMETHEUS_SERIES
        assert not unknown, (name, unknown)
        assert rule["annotations"]["summary"] and rule["labels"]["severity"] in {"page", "warn"}
    # the gateway and the push are watched for being absent, not only for being old
    assert "absent(push_time_seconds" in alerts["MetricsPushAbsent"]["expr"]
    assert 'up{job="pushgateway"}' in alerts["PushgatewayDown"]["expr"]


def test_every_alert_has_a_promtool_case_that_fires_and_one_that_stays_quiet():
    cases: dict[str, set[bool]] = {}
    for path in (OPS / "prometheus" / "tests").glob("*.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    for rule in alert_rules():
        assert cases.get(rule["alert"]) == {True, False}, f"{rule['alert']}: {cases.get(rule['alert'])}"
    # reward _sum falls with negative rewards: increase()/rate() would read that as counter resets
    assert "increase(agent_reward_sum" not in RULES.read_text() and "rate(agent_reward_sum" not in RULES.read_text()
