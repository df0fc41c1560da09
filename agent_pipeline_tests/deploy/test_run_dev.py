"""`make run` (ops/run-dev.sh) starts the metrics stack on loopback, points the pipeline at its Pushgateway, runs
dagster dev, and stops the stack when dagster dev exits, on its own or on Ctrl-C / SIGTERM; a taken port leaves
that component out and the UI still starts. Real Prometheus and Pushgateway processes; a small stand-in for
dagster dev (dev_stand_in.py) records what it was given."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from agent_pipeline_tests.conftest import free_port
from agent_pipeline_tests.deploy.promql import OPS, alert_rules
from agent_pipeline_tests.deploy.test_stack_integration import pytestmark as _stack_marks

pytestmark = _stack_marks
SCRIPT = OPS / "run-dev.sh"
STAND_IN = Path(__file__).with_name("dev_stand_in.py")


def _ignore_sigint():  # what a script's `make run &` hands its background job
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Run:
    def __init__(self, tmp_path: Path, pipeline_home: Path, mode: str, background: bool = False, **env):
        self.record = tmp_path / "dev.json"
        self.dagster_home = tmp_path / "dagster_home"
        self.state = pipeline_home / "observability"
        self.prom_port, self.gw_port = free_port(), free_port()
        self.env = {**os.environ, "DAGSTER_HOME": str(self.dagster_home), "AGENT_PIPELINE_HOME": str(pipeline_home),
                    "PROMETHEUS_PORT": str(self.prom_port), "PUSHGATEWAY_PORT": str(self.gw_port), **env}
        self.env.pop("AGENT_PIPELINE_PUSHGATEWAY_URL", None)
        # its own session, like a terminal's foreground job: a signal to its group is what Ctrl-C sends
        self.proc = subprocess.Popen(["bash", str(SCRIPT), sys.executable, str(STAND_IN), str(self.record), mode],
                                     env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True, preexec_fn=_ignore_sigint if background else None)

    def recorded(self, timeout_s: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.record.exists():
                return json.loads(self.record.read_text())
            assert self.proc.poll() is None, self.proc.communicate()
            time.sleep(0.05)
        pytest.fail("the stand-in for dagster dev never started")

    def finished(self, timeout_s: float = 60.0) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode, err

    def stack_pids(self) -> dict[str, int]:
        return {p.stem: int(p.read_text()) for p in self.state.glob("*.pid")}

    def close(self) -> None:
        """After a failed assertion too: nothing this test started may outlive it."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        subprocess.run(["bash", str(OPS / "start-local-stack.sh"), "stop", str(self.state)], env=self.env, timeout=60)


@pytest.fixture
def runs():
    started: list[Run] = []
    yield started
    for run in started:
        run.close()


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/status").exists() and "zombie" in Path(f"/proc/{pid}/status").read_text()


def eventually(condition, timeout_s: float = 10.0) -> bool:
    """``condition()`` became true within ``timeout_s`` (a stopped process can take a moment to be reaped)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_stack_runs_beside_dagster_dev_and_stops_when_it_exits(tmp_path, pipeline_home, runs):
    run = Run(tmp_path, pipeline_home, "exit")
    runs.append(run)
    seen = run.recorded()
    code, err = run.finished()
    assert code == 0, err
    assert seen["gateway_url"] == f"http://127.0.0.1:{run.gw_port}"
    assert seen["pushgateway_ready"] and seen["prometheus_ready"], err
    assert seen["rules"] == sorted(r["alert"] for r in alert_rules())  # Prometheus loaded the alert rules
    assert seen["sigint_handled_by_python"]  # dagster dev keeps its Ctrl-C handler
    assert not listening(run.prom_port) and not listening(run.gw_port) and not run.stack_pids()
    instance = yaml.safe_load((run.dagster_home / "dagster.yaml").read_text())
    assert instance["retention"] == yaml.safe_load((OPS / "dagster.dev.yaml").read_text())["retention"]


@pytest.mark.parametrize("sig, background, reader_gone", [(signal.SIGINT, False, False), (signal.SIGTERM, False, False),
                                                          (signal.SIGTERM, True, False), (signal.SIGINT, False, True)])
def test_ctrl_c_or_sigterm_stops_dagster_dev_first_then_the_stack(tmp_path, pipeline_home, runs, sig, background,
                                                                 reader_gone):
    run = Run(tmp_path, pipeline_home, "wait", background=background)
    runs.append(run)
    started = run.recorded()
    assert started["prometheus_ready"] and started["sigint_handled_by_python"]  # even when started with it ignored
    pids = run.stack_pids()
    assert set(pids) == {"prometheus", "pushgateway"}
    if reader_gone:  # `make run | tee log`: Ctrl-C ends tee too, and writing to its pipe raises SIGPIPE
        run.proc.stdout.close()
        run.proc.stderr.close()
    os.killpg(run.proc.pid, sig)  # the terminal's Ctrl-C goes to the foreground group; make passes SIGTERM on
    if reader_gone:
        run.proc.wait(timeout=60)
        err = ""
    else:
        code, err = run.finished()
    seen = json.loads(run.record.read_text())
    assert seen["interrupted"], err  # dagster dev was asked to shut down ...
    assert seen["pushgateway_up_when_interrupted"]  # ... while the stack still ran (its last pushes get through)
    assert eventually(lambda: all(gone(pid) for pid in pids.values())), err
    assert eventually(lambda: not listening(run.prom_port) and not listening(run.gw_port)), err


def test_a_taken_port_is_reported_and_everything_else_starts(tmp_path, pipeline_home, runs):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        run = Run(tmp_path, pipeline_home, "exit", PROMETHEUS_PORT=str(port))
        runs.append(run)
        run.prom_port = port
        seen = run.recorded()
        code, err = run.finished()
        assert code == 0, err
        assert f"port {port}" in err and "taken" in err and "PROMETHEUS_PORT" in err
        assert seen["pushgateway_ready"] and seen["gateway_url"] == f"http://127.0.0.1:{run.gw_port}"
        assert listening(port)  # the other process's port was left alone
    assert not listening(run.gw_port) and not run.stack_pids()


PROTOTYPE_DEV_YAML = """# DAGSTER_HOME/dagster.yaml for `make run`: a queued coordinator keeps a 2-core machine responsive.
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 3
"""


def test_an_untouched_old_instance_config_gains_retention_and_an_edited_one_is_kept(tmp_path, pipeline_home, runs):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(PROTOTYPE_DEV_YAML)  # what `make run` copied before
    run = Run(tmp_path, pipeline_home, "exit", PROMETHEUS_BIN="not-installed-prometheus")
    runs.append(run)
    run.recorded()
    code, err = run.finished()
    assert code == 0 and "not-installed-prometheus not found" in err, err  # and the UI still started
    assert (dagster_home / "dagster.yaml").read_text() == (OPS / "dagster.dev.yaml").read_text()
    edited = PROTOTYPE_DEV_YAML.replace("max_concurrent_runs: 3", "max_concurrent_runs: 1")  # header kept, edited
    (dagster_home / "dagster.yaml").write_text(edited)
    run = Run(tmp_path, pipeline_home, "exit", PROMETHEUS_BIN="not-installed-prometheus")
    runs.append(run)
    run.recorded()
    code, err = run.finished()
    assert code == 0 and (dagster_home / "dagster.yaml").read_text() == edited
    assert "no retention settings" in err
