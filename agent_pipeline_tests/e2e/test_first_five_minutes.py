"""End to end, the first five minutes of a new user: `make run`'s launcher (ops/run-dev.sh: Prometheus and the
Pushgateway on free loopback ports, then `dagster dev`) on a fresh DAGSTER_HOME and AGENT_PIPELINE_HOME, with the
default configuration, and no click. Within five minutes of the UI answering the loop closes on its own: the
automation materializes agent_rewards, reward_distributions and allocator_quotas, a quota-driven run tagged
allocation/period succeeds, and the pipeline's metrics are in the loopback Prometheus."""

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from agent_pipeline_tests.conftest import free_port
from agent_pipeline_tests.dagster_dev import ROOT, graphql, running_dagster_dev
from agent_pipeline_tests.e2e.test_dagster_dev import load_repository

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (shutil.which("prometheus") and shutil.which("prometheus-pushgateway")),
                       reason="prometheus / prometheus-pushgateway not installed (ops/install-system-deps.sh)"),
]

LIMIT_S = 300
LOOP_ASSETS = ("agent_rewards", "reward_distributions", "allocator_quotas")

MATERIALIZED = """
query($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset { assetMaterializations(limit: 1) { runId timestamp metadataEntries { label } } }
  }
}
"""

RUNS = """
query { runsOrError(limit: 300) { __typename ... on Runs { results { runId status jobName tags { key value } } } } }
"""


def materialization(port: int, asset: str) -> dict | None:
    found = graphql(port, MATERIALIZED, {"key": {"path": [asset]}})["assetOrError"]
    if found["__typename"] != "Asset" or not found["assetMaterializations"]:
        return None
    return found["assetMaterializations"][0]


def quota_runs(port: int) -> list[dict]:
    runs = graphql(port, RUNS)["runsOrError"]["results"]
    return [r for r in runs if any(t["key"] == "allocation/period" for t in r["tags"])]


def prometheus_series(port: int, query: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)["data"]["result"]


def test_the_loop_closes_within_five_minutes_of_the_ui_with_metrics_in_prometheus(tmp_path, pipeline_home):
    prom_port, gw_port = free_port(), free_port()
    env = {"PROMETHEUS_PORT": str(prom_port), "PUSHGATEWAY_PORT": str(gw_port), "AGENT_PIPELINE_PUSHGATEWAY_URL": ""}
    state = pipeline_home / "observability"
    try:
        with running_dagster_dev(tmp_path, pipeline_home, extra_env=env,
                                 launcher=("bash", str(ROOT / "ops" / "run-dev.sh"))) as dev:
            ui_up = time.monotonic()
            load_repository(dev.port)
            closed: dict[str, float] = {}
            succeeded: list[dict] = []
            while time.monotonic() - ui_up < LIMIT_S and not (len(closed) == len(LOOP_ASSETS) and succeeded):
                dev.alive()
                for asset in LOOP_ASSETS:
                    if asset not in closed and materialization(dev.port, asset):
                        closed[asset] = time.monotonic() - ui_up
                succeeded = [r for r in quota_runs(dev.port) if r["status"] == "SUCCESS"]
                time.sleep(5)
            elapsed = time.monotonic() - ui_up
            log = dev.log_path.read_text()
            assert set(closed) == set(LOOP_ASSETS), (closed, log[-4000:])
            assert succeeded, (f"no quota-driven run succeeded within {LIMIT_S} s", quota_runs(dev.port),
                               log[-4000:])
            assert elapsed <= LIMIT_S + 10  # the last poll, not a speed measurement
            assert closed["agent_rewards"] <= closed["reward_distributions"] <= closed["allocator_quotas"]
            assert succeeded[0]["jobName"] == "agent_tick"
            quotas = materialization(dev.port, "allocator_quotas")
            labels = {e["label"] for e in quotas["metadataEntries"]}
            assert {"next_decision_due", "explanation", "dagster/row_count"} <= labels

            # the pipeline's own series, pushed to the loopback gateway and scraped by the loopback Prometheus
            deadline = time.monotonic() + 90
            runs = quota = []
            while time.monotonic() < deadline and not (runs and quota):
                runs = prometheus_series(prom_port, 'agent_runs_total{job="agent_pipeline"}')
                quota = prometheus_series(prom_port, 'allocator_quota_runs{job="agent_pipeline"}')
                time.sleep(5)
            assert {s["metric"]["agent"] for s in runs} >= {"cross_venue_arb", "momentum", "regime_watcher"}, runs
            assert quota, "the allocation never reached Prometheus"
            assert "Connection refused" not in log  # the gateway was up before the first push
            warnings = [line for line in log.splitlines() if "Warning" in line or " - WARNING - " in line]
            assert not [w for w in warnings if "SupersessionWarning" in w or "denied" in w], warnings
    finally:
        subprocess.run(["bash", str(ROOT / "ops" / "start-local-stack.sh"), "stop", str(state)], timeout=60,
                       capture_output=True)
