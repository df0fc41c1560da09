"""Reward history in Dagster, in process: a single-run backfill over three daily partitions, a parameter change
and a second backfill that reprices exactly the affected rewards; checks that pass and fail; the blocking
reward_collapse check stopping a downstream asset; where the partitions start."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from agent_pipeline.defs.resources import StoreResource
from agent_pipeline.reward import RewardConfig, RiskBudget, score_output
from agent_pipeline.reward.history import read_rewards
from agent_pipeline_tests.reward.helpers import ev, write_events

D1 = datetime(2024, 1, 1, tzinfo=UTC)
ARB = [{"symbol": "BTC/USDT", "profit_pct": 0.5}]


def momentum_out(i):
    return [{"symbol": "ETH/USDT", "profit_pct": 0.05 * (i + 1)}]


def reward_defs():
    from agent_pipeline.defs import reward as reward_domain
    from agent_pipeline_tests.location import loaded

    return reward_domain.build_defs(*loaded())


def assets_and_resources(**reward_config):
    """The assets, with a reward_config resource carrying ``reward_config`` (a [reward] table) over the defaults."""
    from agent_pipeline.defs.reward.resources import RewardConfigResource

    defs = reward_defs()
    assets = list(defs.assets)
    resource = RewardConfigResource.from_config(RewardConfig.from_table(reward_config))
    return assets, {"store": StoreResource(), "reward_config": resource}


def backfill(assets, resources, first: str, last: str):
    return dg.materialize(
        assets, selection=["agent_rewards"], resources=resources,
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
    )


def check_results(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.fixture
def history(store):
    events = []
    for day in range(4):  # 2024-01-01 .. 2024-01-04; the backfill covers the first three days
        base = D1 + timedelta(days=day)
        for i in range(3):
            events.append(ev("momentum", base + timedelta(hours=i), strategy="momentum", output=momentum_out(i),
                             event_id=f"m{day}{i}"))
        events.append(ev("arb", base + timedelta(hours=5), strategy="cross_venue_arb", output=ARB,
                         event_id=f"a{day}"))
        events.append(ev("watcher", base + timedelta(hours=6), strategy="regime", output=[{"regime": "calm"}],
                         event_id=f"w{day}"))
        events.append(ev("arb", base + timedelta(hours=7), strategy="cross_venue_arb", error="boom",
                         event_id=f"f{day}"))
        events.append(ev("legacy", base + timedelta(hours=8), reward=0.42, imported=True, event_id=f"l{day}"))
    write_events(store, events)
    return events


def test_backfill_three_partitions_then_reprice_exactly_the_changed_rewards(store, history):
    assets, resources = assets_and_resources()
    result = backfill(assets, resources, "2024-01-01", "2024-01-03")
    assert result.success
    rows = read_rewards(store)
    assert len(rows) == 3 * 7 and rows["started_at"].max() < D1 + timedelta(days=3)
    by_id = dict(zip(rows["event_id"], rows["reward"], strict=False))
    config = RewardConfig()
    for day in range(3):
        for i in range(3):
            assert by_id[f"m{day}{i}"] == score_output("momentum", "momentum", momentum_out(i), config)[0]
        assert by_id[f"a{day}"] == pytest.approx(75.25 / 300)
        assert by_id[f"w{day}"] == 0.0
        assert by_id[f"l{day}"] == 0.42
    sources = dict(zip(rows["event_id"], rows["pricing"], strict=False))
    assert sources["l0"] == "recorded" and sources["f0"] == "failed" and sources["m00"] == "recomputed"

    mat = result.asset_materializations_for_node("agent_rewards")[0]
    assert mat.metadata["partitions"].value == 3
    assert mat.metadata["rows_in_window"].value == 21 and mat.metadata["recorded_kept"].value == 3
    assert "legacy" in {r.data["agent"] for r in mat.metadata["per_agent"].value.records}
    checks = check_results(result)
    assert checks["rewards_finite"].passed and checks["rewards_plausible_range"].passed
    assert not checks["newest_event_fresh"].passed  # history from 2024 is not fresh: a warning

    # same range again: nothing changes
    again = backfill(assets, resources, "2024-01-01", "2024-01-03")
    assert again.asset_materializations_for_node("agent_rewards")[0].metadata["rewards_changed"].value == 0
    assert len(read_rewards(store)) == 21

    # a bigger momentum budget, only over the middle two days
    assets2, resources2 = assets_and_resources(budgets={"momentum": {"capital_usd": 20_000, "max_loss_usd": 200}})
    second = backfill(assets2, resources2, "2024-01-02", "2024-01-03")
    assert second.success
    assert second.asset_materializations_for_node("agent_rewards")[0].metadata["rewards_changed"].value == 6
    after = read_rewards(store)
    new = dict(zip(after["event_id"], after["reward"], strict=False))
    changed = {k for k in by_id if not (by_id[k] == new[k] or (by_id[k] != by_id[k] and new[k] != new[k]))}
    assert changed == {f"m{day}{i}" for day in (1, 2) for i in range(3)}
    bigger = RewardConfig(budgets=dict(RewardConfig().budgets, momentum=RiskBudget(20_000.0, 200.0)))
    for day in (1, 2):
        for i in range(3):
            assert new[f"m{day}{i}"] == score_output("momentum", "momentum", momentum_out(i), bigger)[0]
    assert len(after) == 21


def test_plausible_range_check_fails_when_configured_tighter(store, history):
    assets, resources = assets_and_resources(history={"min_reward": -0.01, "max_reward": 0.1})
    result = backfill(assets, resources, "2024-01-01", "2024-01-01")
    checks = check_results(result)
    assert not checks["rewards_plausible_range"].passed
    assert checks["rewards_plausible_range"].metadata["outside"].value >= 2


def test_distributions_asset_shows_tables_and_chart_and_collapse_blocks_downstream(store):
    now = datetime.now(UTC)
    events = []
    for agent in ("steady", "falling"):
        for i in range(6 * 24 * 6):
            events.append(ev(agent, now - timedelta(hours=1, minutes=10 * i + 1), reward=0.5, imported=True))
        for i in range(30):
            events.append(ev(agent, now - timedelta(minutes=i + 1), imported=True,
                             reward=-2.0 if agent == "falling" else 0.5))
    write_events(store, events)
    assets, resources = assets_and_resources()
    first = assets[0].partitions_def.get_first_partition_key()  # the first stored event's day
    assert backfill(assets, resources, first, now.strftime("%Y-%m-%d")).success

    @dg.asset(deps=["reward_distributions"], description="stands in for the allocator")
    def allocator_stand_in():
        return 1

    result = dg.materialize([*assets, allocator_stand_in], selection=["reward_distributions", "allocator_stand_in"],
                            resources=resources, raise_on_error=False)
    checks = check_results(result)
    assert not checks["reward_collapse"].passed
    assert checks["distributions_finite"].passed
    assert result.asset_materializations_for_node("reward_distributions")
    assert not [m for m in result.get_asset_materialization_events()
                if m.asset_key == dg.AssetKey("allocator_stand_in")]
    meta = result.asset_materializations_for_node("reward_distributions")[0].metadata
    assert "data:image/png;base64," in meta["chart"].value
    assert {r.data["agent"] for r in meta["per_agent"].value.records} == {"falling", "steady"}
    assert meta["rows"].value == 8 and meta["agents"].value == 2
    assert "UTC" in meta["history_covered"].value


def test_history_job_refreshes_yesterday_and_today_and_passes_on_healthy_history(store):
    now = datetime.now(UTC)
    write_events(store, [ev("steady", now - timedelta(minutes=i), reward=0.5 + 0.01 * (i % 3), imported=True)
                         for i in range(1, 40)])
    from agent_pipeline.defs import reward as reward_domain
    from agent_pipeline_tests.location import domain_defs

    defs = domain_defs(reward_domain)
    first = defs.resolve_assets_def("agent_rewards").partitions_def.get_first_partition_key()
    result = defs.resolve_job_def("reward_history").execute_in_process(
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": now.strftime("%Y-%m-%d")})
    assert result.success
    assert len(read_rewards(store)) == 39
    checks = check_results(result)
    assert checks["reward_collapse"].passed and checks["newest_event_fresh"].passed
    meta = result.asset_materializations_for_node("agent_rewards")[0].metadata
    assert meta["dagster/row_count"].value == 39
    assert [c.name for c in meta["dagster/column_schema"].schema.columns][:2] == ["event_id", "agent"]
    observed = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert observed[0].event_specific_data.asset_observation.metadata["dagster/row_count"].value == 39


def test_partitions_start_on_the_first_stored_event_unless_configured(store, pipeline_home):
    from agent_pipeline.store import append_event

    today = datetime.now(UTC).date()
    assert reward_defs().assets[0].partitions_def.get_first_partition_key() == today.isoformat()  # a new install
    append_event(store, ev("old", datetime(2025, 3, 4, 12, tzinfo=UTC), reward=0.1, imported=True))
    rebuilt = reward_defs().assets[0]  # the code location loading again after an import of older history
    assert rebuilt.partitions_def.get_first_partition_key() == "2025-03-04"
    assert rebuilt.specs_by_key[dg.AssetKey("agent_rewards")].metadata["first_partition_from"] == \
        "the first stored event's day"
    (pipeline_home / "config.toml").write_text('[reward.history]\nhistory_start = "2025-06-01"\n')
    assert reward_defs().assets[0].partitions_def.get_first_partition_key() == "2025-06-01"


def test_a_busy_store_at_load_starts_the_partitions_yesterday_and_says_why(store):
    from agent_pipeline.reward.partitions import history_start
    from agent_pipeline.store import append_event

    append_event(store, ev("old", datetime(2025, 3, 4, 12, tzinfo=UTC), reward=0.1, imported=True))
    today = datetime.now(UTC).date()
    with store.connect():  # another holder of the store's lock, as a writer in another process would be
        start, origin = history_start(None, store, today, timeout_s=0.2)
    # yesterday, so the two days the automation reprices exist even in a run process that could not read the store
    assert start == (today - timedelta(days=1)).isoformat() and "busy" in origin


def test_resource_rejects_misspelt_fields():
    from agent_pipeline.defs.reward.resources import RewardConfigResource

    with pytest.raises(Exception, match="fil_prob"):
        RewardConfigResource(fil_prob=0.5)


def test_run_config_overrides_the_reward_parameters_for_one_backfill(store, history):
    assets, resources = assets_and_resources()
    run_config = {"ops": {"agent_rewards": {"config": {
        "fill_prob": 0.6, "budgets": {"momentum": {"capital_usd": 20000.0, "max_loss_usd": 200.0}}}}}}
    result = dg.materialize(
        assets, selection=["agent_rewards"], resources=resources, run_config=run_config,
        tags={"dagster/asset_partition_range_start": "2024-01-02", "dagster/asset_partition_range_end": "2024-01-02"},
    )
    assert result.success
    rows = read_rewards(store)
    new = dict(zip(rows["event_id"], rows["reward"], strict=False))
    config = RewardConfig(fill_prob=0.6,
                          budgets=dict(RewardConfig().budgets, momentum=RiskBudget(20_000.0, 200.0)))
    assert new["m10"] == score_output("momentum", "momentum", momentum_out(0), config)[0]
    assert new["a1"] == score_output("arb", "cross_venue_arb", ARB, config)[0]


def test_config_toml_sets_the_first_partition_and_rejects_unknown_keys(pipeline_home):
    (pipeline_home / "config.toml").write_text('[reward.history]\nhistory_start = "2023-06-01"\n')
    from agent_pipeline.defs.reward.assets import daily_partitions
    from agent_pipeline.pipeline_settings import Settings

    assert reward_defs().assets[0].partitions_def.get_first_partition_key() == "2023-06-01"
    assert daily_partitions(Settings.load().reward.history.history_start).get_first_partition_key() == "2023-06-01"
    (pipeline_home / "config.toml").write_text('[reward.history]\nhistroy_start = "2023-06-01"\n')
    with pytest.raises(ValueError, match="histroy_start'; did you mean 'history_start'"):
        reward_defs()
