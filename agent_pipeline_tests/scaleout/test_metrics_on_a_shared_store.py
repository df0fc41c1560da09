"""Publishing from several hosts of a shared store: one push lock and one push state, both in the database; the
exported kill switch is the database's."""

from __future__ import annotations

from datetime import UTC, datetime

from agent_pipeline.metrics.collector import files_and_freshness
from agent_pipeline.metrics.config import MetricsConfig
from agent_pipeline.metrics.publish import PushState, publish
from agent_pipeline.store import AgentEvent, LockBusy, Store, append_event
from agent_pipeline.trading.kill_switch_store import DatabaseKillSwitch
from agent_pipeline_tests.conftest import free_port


def test_publishers_on_two_hosts_count_together_and_keep_nothing_on_disk(postgres_url, tmp_path):
    store = Store(postgres_url)
    append_event(store, AgentEvent(run_id="r", agent="a", started_at=datetime.now(UTC), latency_seconds=0.1))
    down = MetricsConfig(gateway_url=f"http://127.0.0.1:{free_port()}", timeout_s=0.5)
    homes = [tmp_path / "host_a", tmp_path / "host_b"]
    for home in homes:
        home.mkdir()
        result = publish(down, home=home, store=Store(postgres_url))
        assert result.status == "failed"
    state = PushState.load(store, tmp_path / "unused.json")
    assert state.failures == 2 and state.outage_failures == 2  # one outage, seen by both hosts
    assert [sorted(p.name for p in home.iterdir()) for home in homes] == [[], []]


def test_the_push_lock_is_the_databases(postgres_url, tmp_path):
    store = Store(postgres_url)
    cfg = MetricsConfig(gateway_url=f"http://127.0.0.1:{free_port()}", timeout_s=0.5, lock_timeout_s=0.2)
    with Store(postgres_url).lock("metrics_push", 1.0):  # another host is pushing
        result = publish(cfg, home=tmp_path, store=store)
    assert result.status == "lock_busy"
    try:
        with store.lock("metrics_push", 0.1):
            pass
    except LockBusy:  # pragma: no cover - the lock must be free again
        raise AssertionError("the push lock stayed held") from None


def test_the_exported_kill_switch_is_the_one_in_the_database(postgres_url, tmp_path):
    store = Store(postgres_url)
    DatabaseKillSwitch(store, key=b"").trip("halted on another host")
    samples = {(s.name, s.labels): s.value for s in files_and_freshness(tmp_path, None, fresh=False, now=0.0,
                                                                         store=store)}
    assert samples[("trading_kill_switch_engaged", ())] == 1.0
    assert samples[("trading_kill_switch_state", (("state", "HALTED"),))] == 1.0


def _runs_in(exposition_text: str, agent: str) -> float | None:
    for line in exposition_text.splitlines():
        if line.startswith(f'agent_runs_total{{agent="{agent}"') or line.startswith(
                f'agent_runs_total{{agent="{agent}",'):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_the_dagster_publisher_computes_from_the_configured_database_and_keeps_its_state_there(
        postgres_url, pipeline_home, monkeypatch):
    """The resource the sensors and the publish job use is built from the settings: with a database URL it must
    compute from that database (not the home's DuckDB file) and read back the state it saved there, which is what
    lets the end-of-run sensor skip a run whose snapshot is already published."""
    from agent_pipeline.defs.metrics.resources import pushgateway_resource
    from agent_pipeline.pipeline_settings import Settings

    monkeypatch.setenv("AGENT_PIPELINE_STORE_URL", postgres_url)
    monkeypatch.setenv("AGENT_PIPELINE_PUSHGATEWAY_URL", f"http://127.0.0.1:{free_port()}")  # down
    store = Store(postgres_url)
    for run in ("r1", "r2"):
        append_event(store, AgentEvent(run_id=run, agent="shared", started_at=datetime.now(UTC), latency_seconds=0.1))
    resource = pushgateway_resource(Settings.load())
    result = resource.publish()
    assert result.status == "failed" and result.events == 2  # the database's two events, not an empty file
    assert resource.state().failures == 1 == PushState.load(store, pipeline_home / "unused.json").failures
    assert sorted(p.name for p in pipeline_home.iterdir()) == []  # no DuckDB file, no state file


def test_the_metrics_cli_serves_and_pushes_what_the_database_holds(postgres_url, pipeline_home, tmp_path):
    """`agent-pipeline metrics serve` and `metrics push` with a database URL: the series are the database's."""
    import os
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    store = Store(postgres_url)
    for run in ("r1", "r2", "r3"):
        append_event(store, AgentEvent(run_id=run, agent="shared", started_at=datetime.now(UTC), latency_seconds=0.1))
    cli = str(Path(sys.executable).with_name("agent-pipeline"))
    env = {**os.environ, "AGENT_PIPELINE_HOME": str(pipeline_home), "AGENT_PIPELINE_STORE_URL": postgres_url}
    server = subprocess.Popen([cli, "metrics", "serve", "--port", "0"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert "serving metrics on" in line, (line, server.stderr.read() if server.poll() is not None else "")
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        text = urllib.request.urlopen(url, timeout=30).read().decode()
        assert _runs_in(text, "shared") == 3.0, text[:2000]
    finally:
        server.terminate()
        server.wait(timeout=30)
    pushed = subprocess.run([cli, "metrics", "push", "--gateway", f"http://127.0.0.1:{free_port()}",
                             "--timeout", "0.5"], env=env, capture_output=True, text=True, timeout=120)
    assert pushed.returncode == 1 and "3 events" in pushed.stdout + pushed.stderr, pushed
    assert PushState.load(store, tmp_path / "unused.json").failures == 1
    assert not (pipeline_home / "agent_pipeline.duckdb").exists()


def test_a_database_that_does_not_answer_is_said_so_not_called_a_busy_lock(tmp_path, caplog):
    store = Store(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    result = publish(MetricsConfig(gateway_url=f"http://127.0.0.1:{free_port()}", timeout_s=0.5), home=tmp_path,
                     store=store)
    assert result.status == "lock_unusable" and "cannot connect" in result.error
    assert "another publisher" not in caplog.text
