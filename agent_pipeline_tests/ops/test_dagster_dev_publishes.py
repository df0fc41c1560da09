"""End to end with the real daemon: `dagster dev` runs the agents, and the end-of-run publish sensor brings their
metrics into a real Prometheus (through the Pushgateway started by ops/start-local-stack.sh) within one push."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agent_pipeline_tests.conftest import free_port
from agent_pipeline_tests.metrics.helpers import truth
from agent_pipeline_tests.ops.test_stack_integration import Stack, pytestmark as _marks

pytestmark = [pytest.mark.e2e, *_marks[1:]]
ROOT = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).with_name("dagster")

LAUNCH = """
mutation($selector: JobOrPipelineSelector!) {
  launchRun(executionParams: {selector: $selector, runConfigData: {}}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""
REPOS = """{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"""


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        payload = json.load(resp)
    assert "errors" not in payload, payload["errors"]
    return payload["data"]


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path / "stack").start()
    try:
        yield s
    finally:
        s.stop()


def test_dagster_dev_runs_end_with_a_push_that_prometheus_scrapes(stack, tmp_path, pipeline_home, store):
    (pipeline_home / "config.toml").write_text("[market]\nfault_rate = 0.0\n")
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "AGENT_PIPELINE_HOME": str(pipeline_home),
           "AGENT_PIPELINE_PUSHGATEWAY_URL": stack.gateway}
    log_path = tmp_path / "dagster_dev.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([str(DAGSTER), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def repo_name():
            assert proc.poll() is None, log_path.read_text()[-3000:]
            nodes = graphql(port, REPOS)["repositoriesOrError"].get("nodes") or []
            return next((n["name"] for n in nodes if n["location"]["name"] == "agent_pipeline"), None)

        repo = stack.wait_for(repo_name, "dagster dev to load the location", timeout_s=180)
        time.sleep(8)  # let the publish sensors take their first tick (it only sets the cursor)
        selector = {"repositoryLocationName": "agent_pipeline", "repositoryName": repo, "jobName": "agent_runs"}
        launched = graphql(port, LAUNCH, {"selector": selector})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched

        def in_sync():
            stored = sum(t["runs"] for t in truth(store).values()) if store.path.exists() else 0
            got = stack.query("sum(agent_runs_total)")
            return stored >= 3 and got and float(got[0]["value"][1]) == stored

        stack.wait_for(in_sync, "the end-of-run push to reach Prometheus", timeout_s=150)
        # the run itself never waits on the gateway; its metrics were pushed by the daemon's sensor
        assert stack.query('push_time_seconds{job="agent_pipeline"}')
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
