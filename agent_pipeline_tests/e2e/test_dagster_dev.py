"""End to end: `dagster dev -w workspace.yaml` serves the agent_pipeline location; through the webserver's GraphQL
API we see its jobs, schedules and assets, launch agent_runs, and watch it succeed and land events in DuckDB."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agent_pipeline.store import Store, read_events
from agent_pipeline_tests.conftest import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).with_name("dagster")


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        payload = json.load(resp)
    assert "errors" not in payload, payload["errors"]
    return payload["data"]


@pytest.fixture
def dagster_dev(tmp_path, pipeline_home):
    (pipeline_home / "config.toml").write_text("[market]\nfault_rate = 0.0\n")
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "AGENT_PIPELINE_HOME": str(pipeline_home)}
    log = (tmp_path / "dagster_dev.log").open("w")
    proc = subprocess.Popen([str(DAGSTER), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "dagster_dev.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "dagster dev did not serve /server_info within 180 s"
            time.sleep(1)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


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
              assetNodes { assetKey { path } }
            }
          }
        }
      }
    }
  }
}
"""

LAUNCH = """
mutation($selector: JobOrPipelineSelector!) {
  launchRun(executionParams: {selector: $selector, runConfigData: {}}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

RUN_STATUS = """
query($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }
"""


def test_dagster_dev_serves_the_location_and_runs_agents(dagster_dev):
    port = dagster_dev
    deadline = time.monotonic() + 120
    while True:  # the location may still be loading right after /server_info answers
        entries = graphql(port, LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
        entry = next(e for e in entries if e["name"] == "agent_pipeline")
        loaded = entry["locationOrLoadError"]
        if loaded and loaded["__typename"] == "RepositoryLocation":
            break
        assert loaded is None or loaded["__typename"] != "PythonError", loaded
        assert time.monotonic() < deadline
        time.sleep(1)
    repo = loaded["repositories"][0]
    jobs = {j["name"] for j in repo["jobs"]}
    assert {"agent_runs", "agent__momentum", "agent__cross_venue_arb", "agent__regime_watcher"} <= jobs
    schedules = {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]}
    assert schedules["agent_runs_schedule"] == "RUNNING"
    assert all(s["sensorState"]["status"] == "RUNNING" for s in repo["sensors"]), repo["sensors"]
    assets = {"/".join(a["assetKey"]["path"]) for a in repo["assetNodes"]}
    assert "agent_events" in assets

    selector = {"repositoryLocationName": "agent_pipeline", "repositoryName": repo["name"], "jobName": "agent_runs"}
    launched = graphql(port, LAUNCH, {"selector": selector})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 240
    status = None
    while time.monotonic() < deadline:
        status = graphql(port, RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS"
    events = read_events(Store.at_home(), read_only=True)
    launched_events = events[events["run_id"] == run_id]
    assert sorted(launched_events["agent"]) == ["cross_venue_arb", "momentum", "regime_watcher"]
