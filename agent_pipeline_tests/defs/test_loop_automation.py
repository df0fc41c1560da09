"""The loop's declarative automation, evaluated by Dagster's own evaluator over real runs of the code location: on
fresh state each asset is requested as soon as its upstream has data, then once per allocation period; a failed
blocking check of reward_distributions holds allocator_quotas back; the UI says when the next decision is due."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from agent_pipeline.defs.automation import next_decision_due, period_cron


def requested(result) -> dict[str, set]:
    """Asset name -> partition keys (None for an unpartitioned asset) the evaluation requested."""
    out: dict[str, set] = {}
    for res in result.results:
        if res.true_subset.size:
            keys = res.true_subset.expensively_compute_partition_keys() if res.true_subset.is_partitioned else {None}
            out[res.key.to_user_string()] = set(keys)
    return {k: v for k, v in out.items() if "@" not in k}  # checks are reported beside their assets


@pytest.fixture
def location(store, pipeline_home):
    (pipeline_home / "config.toml").write_text("[market]\nfault_rate = 0.0\n")
    from agent_pipeline.definitions import build_location
    from agent_pipeline.pipeline_settings import Settings

    return build_location(Settings.load())


def test_fresh_state_closes_the_loop_step_by_step_then_keeps_the_period(location, store):
    defs = location
    instance = dg.DagsterInstance.ephemeral()
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert requested(result) == {}  # no event yet: nothing to price

    assert defs.get_job_def("agent_runs").execute_in_process(instance=instance).success
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert requested(result) == {"agent_rewards": {today}}  # the first events: today's rewards, nothing below yet

    assets = [defs.resolve_assets_def(k) for k in ("agent_rewards", "reward_distributions", "allocator_quotas")]
    assert dg.materialize(assets, selection=["agent_rewards"], partition_key=today, instance=instance).success
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    # distributions and the first allocation in one run: Dagster skips the allocator there if a blocking check fails
    assert requested(result) == {"reward_distributions": {None}, "allocator_quotas": {None}}

    done = dg.materialize(assets, selection=["reward_distributions", "allocator_quotas"], instance=instance)
    assert done.success
    meta = done.asset_materializations_for_node("allocator_quotas")[0].metadata
    assert meta["dagster/row_count"].value == 3 and "next_decision_due" in meta
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert requested(result) == {}  # decided; the next decision waits for the period's tick

    tick = next_decision_due(datetime.now(UTC), 60) + timedelta(seconds=30)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor,
                                               evaluation_time=tick)
    assert set(requested(result)) == {"agent_rewards"}  # the period's tick reprices first
    assert today in requested(result)["agent_rewards"]


def test_a_failed_blocking_check_holds_the_allocator_back_until_it_passes(location, store):
    defs = location
    instance = dg.DagsterInstance.ephemeral()
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    distributions = dg.AssetKey("reward_distributions")

    def report(passed: bool):
        instance.report_runless_asset_event(dg.AssetMaterialization(distributions))
        for name in ("reward_collapse", "distributions_finite"):
            instance.report_runless_asset_event(dg.AssetCheckEvaluation(
                asset_key=distributions, check_name=name, passed=passed or name != "reward_collapse"))

    report(passed=False)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert "allocator_quotas" not in requested(result)
    report(passed=True)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert requested(result).get("allocator_quotas") == {None}


def test_a_hand_launched_allocation_is_refused_while_the_stored_distributions_collapse(location, store):
    from agent_pipeline.reward.distributions import refresh_distributions
    from agent_pipeline_tests.reward.helpers import ev, write_events

    now = datetime.now(UTC)
    events = [ev("momentum", now - timedelta(hours=1, minutes=10 * i + 1), reward=0.5, imported=True)
              for i in range(6 * 24 * 6)]
    events += [ev("momentum", now - timedelta(minutes=i + 1), reward=-2.0, imported=True) for i in range(30)]
    write_events(store, events)
    from agent_pipeline.reward import RewardConfig
    from agent_pipeline.reward.history import recompute_window

    recompute_window(store, now - timedelta(days=8), now + timedelta(minutes=1), RewardConfig())
    refresh_distributions(store)
    result = dg.materialize([location.resolve_assets_def("allocator_quotas")], raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "reward_collapse" in failure.description and "previous quotas stay in force" in failure.description


@pytest.mark.parametrize("minutes, now, due", [
    (60, "2026-01-01T10:09:59", "2026-01-01T10:10:00"),
    (60, "2026-01-01T10:10:00", "2026-01-01T11:10:00"),
    (15, "2026-01-01T10:16:00", "2026-01-01T10:30:00"),
    (120, "2026-01-01T23:30:00", "2026-01-02T00:10:00"),
])
def test_the_next_decision_is_the_next_tick_of_the_period_cron(minutes, now, due):
    assert next_decision_due(datetime.fromisoformat(now).replace(tzinfo=UTC), minutes) == \
        datetime.fromisoformat(due).replace(tzinfo=UTC)
    assert period_cron(minutes) in ("10 * * * *", "*/15 * * * *", "10 */2 * * *")


def test_the_loop_automation_sensor_is_on_and_covers_the_loop(location):
    sensor = location.get_sensor_def("loop_automation_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.description
    graph = location.resolve_asset_graph()
    automated = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).automation_condition}
    assert automated == {"agent_rewards", "reward_distributions", "allocator_quotas"}
    assert not location.schedules or not any("reward" in s.name or "allocator" in s.name for s in location.schedules)
