"""End to end: `dagster dev -w workspace.yaml` serves the agent_pipeline location. Through the webserver's GraphQL
API we see its jobs, schedules, sensors and the asset lineage of the loop, launch agent_runs and watch it succeed
and land events in DuckDB, then backfill reward history over a date range and see it priced."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from agent_pipeline.store import Store, read_events
from agent_pipeline_tests.dagster_dev import graphql, running_dagster_dev

pytestmark = pytest.mark.e2e

LOCATION_QUERY = """
{
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation {
            repositories {
              name
              jobs { name }
              schedules { name scheduleState { status } }
              sensors { name sensorState { status } }
              assetNodes { assetKey { path } dependencyKeys { path } }
            }
          }
        }
      }
    }
  }
}
"""

RUN_STATUS = """
query($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }
"""

BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""

BACKFILL_STATUS = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename ... on PartitionBackfill { status } } }
"""


def wait_until(fetch, done, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = fetch()
        if done(value):
            return value
        time.sleep(2)
    pytest.fail(f"timed out waiting for {what}; last: {value!r}")


def load_repository(port: int) -> dict:
    def fetch():
        entries = graphql(port, LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
        loaded = next(e for e in entries if e["name"] == "agent_pipeline")["locationOrLoadError"]
        assert loaded is None or loaded["__typename"] != "PythonError", loaded
        return loaded

    loaded = wait_until(fetch, lambda v: v and v["__typename"] == "RepositoryLocation", 120, "the location")
    return loaded["repositories"][0]


def test_dagster_dev_serves_the_loop_runs_agents_and_backfills_rewards(tmp_path, pipeline_home):
    (pipeline_home / "config.toml").write_text("[market]\nfault_rate = 0.0\n")
    with running_dagster_dev(tmp_path, pipeline_home) as dev:
        repo = load_repository(dev.port)
        jobs = {j["name"] for j in repo["jobs"]}
        assert {"agent_runs", "agent_tick", "agent__momentum", "agent__cross_venue_arb", "agent__regime_watcher"} <= jobs
        schedules = {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]}
        assert schedules["agent_runs_schedule"] == "RUNNING"
        assert all(status == "RUNNING" for status in schedules.values()), schedules
        assert all(s["sensorState"]["status"] == "RUNNING" for s in repo["sensors"]), repo["sensors"]
        sensors = {s["name"] for s in repo["sensors"]}
        assert {"circuit_breaker", "agent_tick_sensor"} <= sensors

        deps = {"/".join(a["assetKey"]["path"]): {"/".join(d["path"]) for d in a["dependencyKeys"]}
                for a in repo["assetNodes"]}
        assert "agent_events" in deps and deps["agent_events"] == set()
        assert "agent_events" in deps["agent_rewards"]
        assert "agent_rewards" in deps["reward_distributions"]
        assert "reward_distributions" in deps["allocator_quotas"]

        run_id = dev.launch(repo["name"], "agent_runs")
        status = wait_until(lambda: graphql(dev.port, RUN_STATUS, {"runId": run_id})["runOrError"]["status"],
                            lambda s: s in ("SUCCESS", "FAILURE", "CANCELED"), 240, "agent_runs")
        assert status == "SUCCESS"
        events = read_events(Store.at_home(), read_only=True)
        launched_events = events[events["run_id"] == run_id]
        assert sorted(launched_events["agent"]) == ["cross_venue_arb", "momentum", "regime_watcher"]

        today = datetime.now(UTC).date()
        days = [(today - timedelta(days=1)).isoformat(), today.isoformat()]
        params = {"partitionNames": days, "assetSelection": [{"path": ["agent_rewards"]}], "fromFailure": False}
        launched = graphql(dev.port, BACKFILL, {"params": params})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_status = wait_until(
            lambda: graphql(dev.port, BACKFILL_STATUS, {"id": launched["backfillId"]})["partitionBackfillOrError"]["status"],
            lambda s: s not in ("REQUESTED", "CANCELING", "FAILING"), 240, "the reward backfill")
        assert backfill_status in ("COMPLETED", "COMPLETED_SUCCESS"), backfill_status
    with Store.at_home().connect(read_only=True) as conn:
        priced = conn.execute("SELECT count(*) FROM agent_rewards WHERE event_id IN (SELECT event_id FROM "
                              "agent_events WHERE run_id = ?) AND reward IS NOT NULL", [run_id]).fetchone()[0]
    assert priced == 3
