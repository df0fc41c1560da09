"""The code location's definitions, unchanged, on the PostgreSQL store: the agent job's events land in the
database, the kill-switch control job trips the database's switch, and the home keeps nothing but its config."""

from __future__ import annotations

from agent_pipeline.definitions import build_location
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.store import Store, read_events
from agent_pipeline.store.config import STORE_URL_ENV
from agent_pipeline.trading.kill_switch_store import DatabaseKillSwitch
from agent_pipeline_tests.conftest import free_port


def test_the_definitions_run_on_the_database_store(postgres_url, pipeline_home, monkeypatch):
    monkeypatch.setenv(STORE_URL_ENV, postgres_url)
    monkeypatch.setenv("AGENT_PIPELINE_PUSHGATEWAY_URL", f"http://127.0.0.1:{free_port()}")
    (pipeline_home / "config.toml").write_text("[market]\nfault_rate = 0.0\n")
    defs = build_location(Settings.load())
    result = defs.resolve_job_def("agent_runs").execute_in_process(raise_on_error=False)
    assert result.success
    events = read_events(Store(postgres_url))
    assert sorted(events["agent"]) == ["cross_venue_arb", "momentum", "regime_watcher"]
    assert set(events["run_id"]) == {result.run_id}

    control = defs.resolve_job_def("kill_switch_control").execute_in_process(run_config={"ops": {"set_kill_switch": {
        "config": {"action": "trip", "reason": "from the Dagster UI", "by": "ops"}}}}, raise_on_error=False)
    assert control.success
    status = DatabaseKillSwitch(Store(postgres_url), key=b"").status()
    assert status.state.value == "HALTED" and status.reason == "from the Dagster UI"
    # the publish job computes from the database and keeps its push state there (the gateway here is down)
    published = defs.resolve_job_def("publish_metrics").execute_in_process(raise_on_error=False)
    outcome = published.output_for_node("publish_metrics_op")
    assert published.success and outcome["status"] == "failed" and outcome["events"] == 3
    assert outcome["push_failures_total"] == 1
    assert sorted(p.name for p in pipeline_home.iterdir()) == ["config.toml"]
