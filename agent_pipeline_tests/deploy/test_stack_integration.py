"""The real stack: Prometheus and Pushgateway started by ops/start-local-stack.sh on free loopback ports, agent
jobs run in separate processes ending with the end-of-run publish sensor, the loop's other producers (trading,
rewards, allocation) writing through their own code. Prometheus must then hold exactly the store's counts, and
every dashboard query and alert query must return data. A Pushgateway that is down fails no run and is caught up
by the next push once it is back."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent_pipeline.metrics.spec import HISTOGRAMS
from agent_pipeline.store import Store
from agent_pipeline_tests.conftest import free_port
from agent_pipeline_tests.deploy.promql import (
    OPS,
    alert_rules,
    annotation_queries,
    dashboard_queries,
    runnable,
    split_threshold,
)
from agent_pipeline_tests.metrics.helpers import truth

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (shutil.which("prometheus") and shutil.which("prometheus-pushgateway")),
                       reason="prometheus / prometheus-pushgateway not installed (ops/install-system-deps.sh)"),
]

SCRIPT = OPS / "start-local-stack.sh"
RUNNER = Path(__file__).with_name("run_agent_job.py")
CLI = str(Path(sys.executable).with_name("agent-pipeline"))


class Stack:
    def __init__(self, state: Path):
        self.state = state
        self.prom_port, self.gw_port = free_port(), free_port()
        self.env = {**os.environ, "PROMETHEUS_PORT": str(self.prom_port), "PUSHGATEWAY_PORT": str(self.gw_port),
                    "SCRAPE_INTERVAL": "1s", "EVALUATION_INTERVAL": "1s"}
        self.gateway = f"http://127.0.0.1:{self.gw_port}"

    def start(self):
        out = subprocess.run(["bash", str(SCRIPT), "start", str(self.state)], env=self.env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        return self

    def stop(self):
        subprocess.run(["bash", str(SCRIPT), "stop", str(self.state)], env=self.env, timeout=60)

    def query(self, expr: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = json.loads(urllib.request.urlopen(url, timeout=10).read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def scalar_by_labels(self, expr: str) -> dict[tuple, float]:
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k not in ("__name__", "job", "instance"))):
                float(r["value"][1]) for r in self.query(expr)}

    def wait_for(self, predicate, what: str, timeout_s: float = 30.0):
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
                if last:
                    return last
            except (OSError, KeyError, ValueError) as exc:
                last = exc
            time.sleep(0.5)
        pytest.fail(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path / "stack").start()
    try:
        yield s
    finally:
        s.stop()


def run_agent_job(gateway: str, job: str = "agent_runs", **market) -> subprocess.Popen:
    """An agent job in its own process; no injected venue faults unless asked (the default market has some)."""
    market = {"fault_rate": 0.0, **market}
    return subprocess.Popen([sys.executable, str(RUNNER), job, gateway, json.dumps(market)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finished(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def produce_rest_of_the_loop(pipeline_home: Path) -> list[str]:
    """Trip the kill switch and build rewards and quotas through their owners' code; returns what is missing."""
    import dagster as dg

    missing = []
    try:
        from agent_pipeline.trading import KillSwitch

        KillSwitch(pipeline_home / "kill_switch.json").trip("integration test")
    except ImportError:
        missing.append("trading.KillSwitch")
    from agent_pipeline.definitions import build_location
    from agent_pipeline.pipeline_settings import Settings

    defs = build_location(Settings.load())  # this test's home (the module's own defs are its first importer's)
    resources = dict(defs.resources)
    try:
        ar, rd = defs.get_assets_def("agent_rewards"), defs.get_assets_def("reward_distributions")
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        assert dg.materialize([ar, rd], selection=[ar.key], partition_key=today, resources=resources).success
        assert dg.materialize([ar, rd], selection=[rd.key], resources=resources).success
    except (ImportError, KeyError, dg.DagsterInvalidDefinitionError) as exc:
        missing.append(f"rewards ({exc})")
    try:
        assert dg.materialize([defs.get_assets_def("allocator_quotas")], resources=resources).success
    except KeyError as exc:
        missing.append(f"allocation ({exc})")
    return missing


def fills(store: Store) -> int:
    with store.connect(read_only=True, timeout_s=10) as conn:
        try:
            return conn.execute("SELECT count(*) FROM fills").fetchone()[0]
        except Exception:  # no trading tables (yet)
            return 0


def loop_state(store: Store) -> dict:
    """Row counts of the loop's tables (for failure messages)."""
    out = {}
    with store.connect(read_only=True, timeout_s=10) as conn:
        for sql in ("SELECT status, count(*) FROM orders GROUP BY ALL", "SELECT count(*) FROM fills",
                    "SELECT count(*) FROM daily_pnl", "SELECT reason_code, count(*) FROM gate_decisions GROUP BY ALL"):
            try:
                out[sql] = conn.execute(sql).fetchall()
            except Exception as exc:
                out[sql] = repr(exc)
    return out


def assert_prometheus_equals_store(stack: Stack, store: Store) -> None:
    want = truth(store)
    runs = stack.scalar_by_labels("agent_runs_total")
    errors = stack.scalar_by_labels("agent_errors_total")
    assert runs == {(("agent", a),): float(t["runs"]) for a, t in want.items()}
    assert errors == {(("agent", a),): float(t["errors"]) for a, t in want.items()}
    for h in HISTOGRAMS:
        counts = stack.scalar_by_labels(f"{h.name}_count")
        assert counts == {(("agent", a),): float(len(t[h.name])) for a, t in want.items()}, h.name
        buckets = stack.scalar_by_labels(f"{h.name}_bucket")
        for a, t in want.items():
            for b in h.buckets:
                key = (("agent", a), ("le", str(float(b)).rstrip("0").rstrip(".") if float(b) != 0 else "0"))
                got = buckets.get(key, buckets.get((("agent", a), ("le", str(float(b))))))
                assert got == sum(1 for v in t[h.name] if v <= b), (h.name, a, b, got)


def test_pipeline_metrics_reach_prometheus_exactly_and_every_panel_and_alert_has_data(stack, store, pipeline_home):
    # every run here is minutes old, so the 1h and 7d windows agree: collapse is judged (one run suffices) and not found
    (pipeline_home / "config.toml").write_text("[reward.collapse]\nmin_runs = 1\n")
    # a dislocated market: the arbitrage agent's orders pass the gate and fill (orders, fills, PnL)
    # (whether an order fills depends on the simulated second; a few runs make at least one fill near-certain)
    for _ in range(3):
        first = finished(run_agent_job(stack.gateway, dislocation_prob=1.0, stale_prob=0.0))
        assert first["success"] and "pushed" in first["sensor"], first
        if fills(store):
            break
    # then two runs at once, one of them in a venue outage (a failed run, published by the failure sensor)
    results = [finished(p) for p in [run_agent_job(stack.gateway), run_agent_job(stack.gateway, fault_rate=1.0)]]
    assert [r["success"] for r in results] == [True, False]
    assert any("pushed" in r["sensor"] for r in results), results
    # within one push: the runs so far are already in Prometheus
    total = sum(t["runs"] for t in truth(store).values())
    stack.wait_for(lambda: stack.query("sum(agent_runs_total)") and
                   float(stack.query("sum(agent_runs_total)")[0]["value"][1]) == total, "the first pushes")

    missing = produce_rest_of_the_loop(pipeline_home)
    third = finished(run_agent_job(stack.gateway))  # kill switch engaged: its proposals are denied
    assert third["success"] and "pushed" in third["sensor"], third
    push = subprocess.run([CLI, "metrics", "push", "--gateway", stack.gateway], capture_output=True, text=True,
                          timeout=60)  # what the catch-up schedule does
    assert push.returncode == 0, push.stderr

    total = sum(t["runs"] for t in truth(store).values())
    stack.wait_for(lambda: stack.query("allocator_quota_runs") and
                   float(stack.query("sum(agent_runs_total)")[0]["value"][1]) == total, "the last push")
    time.sleep(3)  # a few more scrapes, so rate()/increase() see two samples of the newest series
    assert_prometheus_equals_store(stack, store)
    assert float(stack.query("max(trading_kill_switch_engaged)")[0]["value"][1]) == 1
    # fast agents resolve below the prototype's lowest bound (50 ms) instead of reading ~47.5 ms
    p95 = stack.scalar_by_labels("histogram_quantile(0.95, sum by (le, agent) (agent_latency_seconds_bucket))")
    for agent, t in truth(store).items():
        if max(t["agent_latency_seconds"]) < 0.025:
            assert p95[(("agent", agent),)] <= 0.025, (agent, p95)
    assert not [r for r in stack.query("ALERTS") if r["metric"]["alertname"] == "AgentRewardCollapse"]

    no_data = [where for where, expr in dashboard_queries() if not stack.query(runnable(expr))]
    for name, expr in annotation_queries():  # they run; the trip is marked (a decision only within a minute of it)
        if "kill_switch" in expr and not stack.query(runnable(expr)):
            no_data.append(f"annotation {name}")
    for rule in alert_rules():
        query, _, _ = split_threshold(rule["expr"])
        watched = re.fullmatch(r"absent\((.*)\)", query.strip())
        if watched:  # absent() has data only when the pipeline is dark: what it watches must be there instead
            query = watched.group(1)
        if not stack.query(query):
            no_data.append(f"alert {rule['alert']}: {query}")
    assert not no_data, f"queries without data: {no_data}; producers missing: {missing}; {loop_state(store)}"
    assert not missing, missing
    # the engaged kill switch fires its alert in the real Prometheus, not only in promtool's unit tests
    stack.wait_for(lambda: any(a["labels"]["alertname"] == "KillSwitchEngaged"
                               for a in json.loads(urllib.request.urlopen(
                                   f"http://127.0.0.1:{stack.prom_port}/api/v1/alerts", timeout=10).read())
                               ["data"]["alerts"]), "the KillSwitchEngaged alert", timeout_s=15)


def ready(base_url: str) -> bool:
    try:
        return urllib.request.urlopen(f"{base_url}/-/ready", timeout=2).status == 200
    except OSError:
        return False


def test_a_down_pushgateway_fails_no_run_and_is_caught_up_when_back(stack, store, pipeline_home):
    pid_file = stack.state / "pushgateway.pid"
    os.kill(int(pid_file.read_text()), 15)
    stack.wait_for(lambda: not ready(stack.gateway), "the gateway to stop")
    result = finished(run_agent_job(stack.gateway))
    assert result["success"] and "failed" in result["sensor"], result

    gw = subprocess.Popen(["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{stack.gw_port}",
                           "--persistence.file="], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid_file.write_text(str(gw.pid))  # so the stack's stop ends it
    stack.wait_for(lambda: ready(stack.gateway), "the gateway to return")
    push = subprocess.run([CLI, "metrics", "push", "--gateway", stack.gateway], capture_output=True, text=True,
                          timeout=60)
    assert push.returncode == 0, push.stderr
    total = sum(t["runs"] for t in truth(store).values())
    stack.wait_for(lambda: stack.query("sum(agent_runs_total)") and
                   float(stack.query("sum(agent_runs_total)")[0]["value"][1]) == total, "the catch-up push")
    assert_prometheus_equals_store(stack, store)
    failures = stack.query("agent_pipeline_metrics_push_failures_total")
    assert float(failures[0]["value"][1]) == 1


def test_a_component_that_is_still_starting_is_waited_for_not_reported_gone(tmp_path):
    """Until the forked shell has exec'd the binary, its command line is the script's. A log that opens slowly (a
    FIFO whose reader comes late) holds the launch in that state: the script must wait, not say "exited"."""
    import threading

    s = Stack(tmp_path / "stack")
    s.state.mkdir()
    fifo = s.state / "prometheus.log"
    os.mkfifo(fifo)

    def late_reader():
        time.sleep(1.5)
        with open(fifo, "rb") as f:  # drain, so prometheus never blocks on its log
            while f.read(65536):
                pass

    threading.Thread(target=late_reader, daemon=True).start()
    try:
        s.start()
        assert s.query("up") is not None
    finally:
        s.stop()
