"""Start the real `dagster dev -w workspace.yaml` for a test and talk to its webserver's GraphQL API."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent_pipeline_tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).with_name("dagster")

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


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        payload = json.load(resp)
    assert "errors" not in payload, payload["errors"]
    return payload["data"]


@dataclass
class DagsterDev:
    port: int
    proc: subprocess.Popen
    log_path: Path

    def alive(self) -> None:
        assert self.proc.poll() is None, self.log_path.read_text()[-3000:]

    def launch(self, repository: str, job: str) -> str:
        selector = {"repositoryLocationName": "agent_pipeline", "repositoryName": repository, "jobName": job}
        launched = graphql(self.port, LAUNCH, {"selector": selector})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]


@contextmanager
def running_dagster_dev(workdir: Path, pipeline_home: Path, extra_env: dict | None = None,
                        timeout_s: float = 180, launcher: tuple[str, ...] = ()) -> Iterator[DagsterDev]:
    """`dagster dev` on a free loopback port with its own DAGSTER_HOME, up once /server_info answers.

    ``launcher`` goes before the command, as `make run` puts ``bash ops/run-dev.sh`` before it; SIGTERM to the
    whole session stops both."""
    dagster_home = workdir / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "AGENT_PIPELINE_HOME": str(pipeline_home),
           **(extra_env or {})}
    log_path = workdir / "dagster_dev.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([*launcher, str(DAGSTER), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1",
                                 "-p", str(port)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    dev = DagsterDev(port, proc, log_path)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            dev.alive()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"dagster dev did not serve /server_info within {timeout_s} s"
            time.sleep(1)
        yield dev
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
