"""The loop through the real code location: agent runs -> rewards -> allocator_quotas -> scheduler run requests."""

from datetime import UTC, datetime

import dagster as dg

from agent_pipeline.defs.allocation import scheduler
from agent_pipeline.defs.resources import StoreResource


def test_agent_runs_feed_rewards_that_feed_quotas_that_schedule_runs(store, monkeypatch):
    from agent_pipeline.definitions import build_location
    from agent_pipeline.pipeline_settings import Settings

    defs = build_location(Settings.load())  # this test's home (the module's own defs are its first importer's)

    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):
        for name in ("momentum", "regime_watcher"):
            defs.get_job_def(f"agent__{name}").execute_in_process(instance=instance, raise_on_error=False)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    rewards = defs.get_job_def("reward_history").execute_in_process(
        instance=instance, partition_key=today, raise_on_error=False)
    assert rewards.success, "the rewards domain's history job must run for this test"

    result = defs.get_job_def("allocator_quotas_job").execute_in_process(instance=instance)
    meta = result.asset_materializations_for_node("allocator_quotas")[0].metadata
    assert meta["reward_table"].value == "agent_rewards"
    held_back = meta["held_back_runs"].value
    assert meta["total_runs"].value + held_back == 60 and meta["shortfall_runs"].value == 0

    with store.connect(read_only=True) as conn:
        quotas = dict(conn.execute("SELECT agent, quota FROM allocator_quotas").fetchall())
        status = dict(conn.execute("SELECT agent, status FROM allocator_quotas").fetchall())
    # the watcher runs its minimum and does not compete for the rest; the unseen arbitrage agent is explored;
    # what no agent was worth is held back (the budget is a ceiling, as test_defs shows with a longer history)
    assert quotas["regime_watcher"] == 4 and status["regime_watcher"] == "at minimum"
    assert 1 <= quotas["cross_venue_arb"] <= 20
    assert set(status.values()) <= {"capped", "at minimum", "held back", "allocated"}

    sensor = defs.get_sensor_def("agent_tick_sensor")
    monkeypatch.setattr(scheduler, "_now", lambda: datetime.now(UTC))
    tick = sensor(dg.build_sensor_context(instance=instance, resources={"store": StoreResource()}))
    (request,) = tick.run_requests  # the watcher's minimum at least is due at the period's start
    assert request.run_key.startswith("tick:") and request.tags["allocation/period"]
    slots = {s["agent"] for s in request.run_config["ops"]["plan_tick"]["config"]["slots"]}
    assert slots == {agent for agent, quota in quotas.items() if quota > 0}
