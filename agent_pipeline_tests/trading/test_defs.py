"""Dagster wiring: the execution op in the agent jobs, the kill-switch job, the trading_safety asset."""

import dagster as dg
import pytest

from agent_pipeline.agents import load_registry
from agent_pipeline.defs import trading
from agent_pipeline.defs.agents.jobs import build_agent_jobs
from agent_pipeline.defs.resources import KillSwitchResource, MarketResource, StoreResource
from agent_pipeline.defs.trading.assets import trading_safety
from agent_pipeline.defs.trading.control import kill_switch_control
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.trading import KillSwitch, KillSwitchState
from agent_pipeline.trading.kill_switch import default_path
from agent_pipeline.trading.kill_switch_anchor import anchored_switch


def resources(fault_rate=0.0):
    return {"store": StoreResource(), "market": MarketResource.of(fault_rate=fault_rate)}


def trading_defs():
    from agent_pipeline_tests.location import domain_defs

    return domain_defs(trading)


def test_agent_jobs_send_proposals_through_the_gate(store):
    jobs = {j.name: j for j in build_agent_jobs(load_registry(), Settings.load())}
    job = jobs["agent__momentum"]
    assert [n.name for n in job.graph.node_defs] == ["run_momentum", "execute_momentum"]
    result = job.execute_in_process(resources=resources())
    assert result.success
    summary = result.output_for_node("execute_momentum")
    assert summary["proposals"] == 1 and summary["approved"] + summary["denied"] == 1
    with store.connect() as conn:
        assert conn.execute("SELECT count(*) FROM gate_decisions").fetchone()[0] == 1
    materialized = {e.asset_key for e in result.get_asset_materialization_events()} if hasattr(
        result, "get_asset_materialization_events") else {
        e.event_specific_data.materialization.asset_key for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"}
    assert dg.AssetKey("gate_decisions") in materialized
    all_runs = jobs["agent_runs"]
    names = {n.name for n in all_runs.graph.node_defs}
    assert {"execute_momentum", "execute_cross_venue_arb", "execute_regime_watcher"} <= names


def test_a_halted_switch_denies_in_the_running_job(store):
    anchored_switch(default_path()).trip("maintenance", by="test")  # as the CLI and the jobs write it
    jobs = {j.name: j for j in build_agent_jobs(load_registry(), Settings.load())}
    result = jobs["agent__momentum"].execute_in_process(resources=resources())
    assert result.output_for_node("execute_momentum")["by_reason"] == {"KILL_SWITCH_HALTED": 1}
    with store.connect() as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 0


def _run_control(action, reason="", by="ops"):
    return kill_switch_control.execute_in_process(
        run_config={"ops": {"set_kill_switch": {"config": {"action": action, "reason": reason, "by": by}}}},
        resources={"store": StoreResource(), "kill_switch": KillSwitchResource()}, raise_on_error=False)


def test_kill_switch_job_trips_and_clears_with_audit():
    result = _run_control("trip", "fault storm drill")
    assert result.success
    assert KillSwitch(default_path()).state is KillSwitchState.HALTED
    assert result.output_for_node("set_kill_switch")["state"] == "HALTED"
    assert not _run_control("clear").success  # a reason is required
    assert KillSwitch(default_path()).state is KillSwitchState.HALTED
    assert _run_control("clear", "drill over").success
    audit = KillSwitch(default_path()).audit()
    assert [(r["action"], r["by"]) for r in audit] == [("trip", "ops"), ("clear", "ops")]


def test_trading_safety_asset_shows_state_denials_and_approvals(store):
    anchored_switch(default_path()).trip("manual halt", by="alice")
    jobs = {j.name: j for j in build_agent_jobs(load_registry(), Settings.load())}
    jobs["agent__momentum"].execute_in_process(resources=resources())
    result = dg.materialize([trading_safety], resources={"store": StoreResource(), "kill_switch": KillSwitchResource()})
    (mat,) = result.asset_materializations_for_node("trading_safety")
    md = mat.metadata
    assert md["kill_switch_state"].value == "HALTED"
    assert "manual halt" in md["kill_switch"].value
    assert [r.data for r in md["denials_by_reason"].value.records] == [
        {"reason_code": "KILL_SWITCH_HALTED", "denials_24h": 1}]
    assert md["denials_24h"].value == 1
    assert "no approval recorded" in md["approvals"].value  # an empty table says so
    assert "no kill-switch change" not in str(md["kill_switch_audit"].value)  # the trip is audited
    observed = {e.asset_key.to_user_string(): e.event_specific_data.asset_observation.metadata
                for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"}
    assert observed["gate_decisions"]["dagster/row_count"].value >= 1
    assert set(observed) == {"gate_decisions", "orders", "fills", "positions", "daily_pnl"}


@pytest.mark.parametrize("name", ["kill_switch_control", "trading_safety_refresh"])
def test_jobs_are_registered(name):
    assert trading_defs().resolve_job_def(name).description
