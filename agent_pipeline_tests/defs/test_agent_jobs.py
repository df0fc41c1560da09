"""The agent jobs run in process: every agent's event lands in DuckDB and agent_events is materialized;
a failing agent still writes its event and fails its op."""

import textwrap

import dagster as dg

from agent_pipeline.store import Store, read_events


def load_defs():
    """Definitions built now, so they see this test's AGENT_PIPELINE_HOME and config.toml."""
    import agent_pipeline.defs.agents as agents_defs
    from agent_pipeline_tests.location import domain_defs

    return domain_defs(agents_defs)


def test_agent_runs_job_lands_one_event_per_agent(pipeline_home, monkeypatch):
    (pipeline_home / "config.toml").write_text("[market]\nfault_rate = 0.0\n")
    defs = load_defs()
    result = defs.resolve_job_def("agent_runs").execute_in_process(raise_on_error=False)
    assert result.success
    events = read_events(Store.at_home())
    assert sorted(events["agent"]) == ["cross_venue_arb", "momentum", "regime_watcher"]
    assert set(events["run_id"]) == {result.run_id}
    assert events["error"].isna().all() and events["reward"].notna().all()
    materialized = [m for m in result.get_asset_materialization_events()
                    if m.asset_key == dg.AssetKey("agent_events")]
    assert len(materialized) == 3
    by_agent = {m.materialization.metadata["agent"].value: m.materialization.metadata for m in materialized}
    for agent, meta in by_agent.items():  # numbers labelled per agent: the asset's plots draw one line each
        assert {"agent", "event_id", f"latency_seconds ({agent})", f"reward ({agent})"} <= set(meta)
        assert not [k for k in meta if k.startswith("latency_seconds") and k != f"latency_seconds ({agent})"]


def test_a_failing_user_agent_records_its_event_and_fails_its_op(pipeline_home, monkeypatch, tmp_path):
    (tmp_path / "flaky_agents.py").write_text(textwrap.dedent("""
        def broken(ctx):
            raise RuntimeError("model endpoint returned 503")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    (pipeline_home / "config.toml").write_text(textwrap.dedent("""
        builtin_agents = false
        [[agents]]
        name = "flaky"
        ref = "flaky_agents:broken"
        strategy = "llm_news"
    """))
    defs = load_defs()
    result = defs.resolve_job_def("agent__flaky").execute_in_process(raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "model endpoint returned 503" in str(failure[0].event_specific_data)
    events = read_events(Store.at_home())
    assert len(events) == 1
    row = events.iloc[0]
    assert row["agent"] == "flaky" and row["error_type"] == "RuntimeError" and row["run_id"] == result.run_id
    assert "503" in row["error"]


def test_a_market_that_cannot_be_built_is_still_an_event(pipeline_home):
    quotes = pipeline_home / "quotes.csv"  # there, so the config loads, but not quotes
    quotes.write_text("when,what\n1,2\n")
    (pipeline_home / "config.toml").write_text(f'[market]\nsource = "replay"\nreplay_path = "{quotes}"\n')
    result = load_defs().resolve_job_def("agent__momentum").execute_in_process(raise_on_error=False)
    assert not result.success
    row = read_events(Store.at_home()).iloc[0]
    assert row["error_type"] == "MarketDataError" and "missing column" in row["error"]


def test_every_agent_run_op_ends_its_metadata_with_the_run_outcome():
    from datetime import UTC, datetime

    from agent_pipeline.defs.agents.ops import run_outcome
    from agent_pipeline.store.events import AgentEvent

    now = datetime.now(UTC)
    ok = AgentEvent("r", "a", now, 0.1, output=[{"x": 1}, {"x": 2}])
    failed = AgentEvent("r", "a", now, 0.1, error="timed out after 30s")
    assert run_outcome(ok, False) == {"outputs": 2}
    assert run_outcome(failed, True) == {"outputs": 0, "error": "timed out after 30s",
                                         "agent_thread_still_running": True}
