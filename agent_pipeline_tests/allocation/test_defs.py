"""Dagster level: the allocator_quotas asset, the blocking check it respects, and the agent scheduler sensors."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pytest

from agent_pipeline.allocation import Allocation, AllocationConfig
from agent_pipeline.allocation.decision import AgentInfo, period_start_for
from agent_pipeline.allocation.schedule import due_slots
from agent_pipeline.allocation.tables import ALLOCATION, write_decision
from agent_pipeline.allocation.tick_config import TickConfig
from agent_pipeline.defs.allocation import scheduler
from agent_pipeline.defs.allocation.assets import build_allocator_quotas, period_cron
from agent_pipeline.defs.resources import StoreResource
from agent_pipeline.store import AgentEvent, append_event
from agent_pipeline.store.events import EVENTS, append_frame, events_frame

PERIOD = AllocationConfig().period_minutes


def allocator_quotas():
    """The asset as the code location builds it, from this test's config.toml and the registry."""
    from agent_pipeline_tests.location import loaded

    settings, registry = loaded()
    return build_allocator_quotas(settings.allocation,
                                  [AgentInfo(name, a.kind, a.strategy) for name, a in registry.items()])


def _events(store, per_agent: dict[str, list[float | None]]):
    start = datetime.now(UTC) - timedelta(hours=5)
    for agent, rewards in per_agent.items():
        for i, r in enumerate(rewards):
            append_event(store, AgentEvent(run_id=f"r{i}", agent=agent, started_at=start + timedelta(seconds=i),
                                           latency_seconds=0.1, reward=r, error=None if r is not None else "boom"))


def _rows(store, sql):
    with store.connect(read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_definitions_build_with_the_agents_domain():
    from agent_pipeline.defs import agents, allocation
    from agent_pipeline_tests.location import domain_defs

    defs = domain_defs(agents, allocation)
    repo = defs.get_repository_def()
    assert "allocator_quotas_job" in repo.job_names
    sensor = repo.get_sensor_def("agent_tick_sensor")
    assert sensor.job_name == "agent_tick" and sensor.minimum_interval_seconds == 15
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    condition = defs.resolve_assets_def("allocator_quotas").automation_conditions_by_key[dg.AssetKey("allocator_quotas")]
    assert "10 * * * *" in condition.get_label()  # decided once per period by the loop's automation
    assert period_cron(15) == "*/15 * * * *" and period_cron(120) == "10 */2 * * *"


def test_asset_decides_from_agent_events_and_writes_both_tables(store):
    _events(store, {"cross_venue_arb": [0.3] * 30, "momentum": [0.0, None] * 15, "regime_watcher": [0.0] * 10})
    result = dg.materialize([allocator_quotas()], resources={"store": StoreResource()})
    assert result.success
    meta = result.asset_materializations_for_node("allocator_quotas")[0].metadata
    assert meta["reward_table"].value == "agent_events"
    assert meta["rewards_observed"].value == 30 + 15 + 10  # failed runs are not rewards
    assert "| cross_venue_arb |" in meta["quotas"].value and "data:image/svg+xml;base64," in meta["chart"].value
    rows = _rows(store, "SELECT agent, kind, quota, capital_usd, policy FROM allocator_quotas ORDER BY agent")
    quotas = {r[0]: r[2] for r in rows}
    held_back = meta["held_back_runs"].value
    # the budget is a ceiling: what was not given was held back on purpose (the caps leave nothing here)
    assert sum(quotas.values()) + held_back == 60 and meta["shortfall_runs"].value == 0
    assert quotas["regime_watcher"] >= 4 and quotas["cross_venue_arb"] <= 20
    assert {r[0]: r[3] for r in rows}["regime_watcher"] == 0  # watchers size no orders
    (record, held) = _rows(store, "SELECT record, held_back FROM allocator_decisions")[0]
    record = json.loads(record)
    assert record["inputs"]["rewards"] == 55 and record["quotas"] == quotas and "samples" in record
    assert record["held_back"] == held == held_back and record["value_floor"] == 0.0
    # a second decision in the same period replaces it (idempotent)
    assert dg.materialize([allocator_quotas()], resources={"store": StoreResource()}).success
    assert _rows(store, "SELECT count(*) FROM allocator_decisions")[0][0] == 1


def _losing_momentum(store):
    """The history seen in the running product: arbitrage earns and is capped, the watcher observes, momentum
    pays more friction than it earns on every run (0 % win rate, mean below zero)."""
    rng = np.random.default_rng(3)
    rewards = {"cross_venue_arb": 0.25 + 0.05 * rng.standard_normal(40),
               "momentum": -0.02 - np.abs(0.01 * rng.standard_normal(60)), "regime_watcher": np.zeros(20)}
    start = datetime.now(UTC) - timedelta(hours=5)
    events = [AgentEvent(run_id=f"{agent}{i}", agent=agent, started_at=start + timedelta(seconds=i),
                         latency_seconds=0.1, reward=float(r))
              for agent, values in rewards.items() for i, r in enumerate(values)]
    with store.connect() as conn:  # one bulk insert: a connection per event would take seconds
        EVENTS.ensure(store, conn)
    append_frame(store, events_frame(events))


def _decided(store):
    result = dg.materialize([allocator_quotas()], resources={"store": StoreResource()})
    meta = result.asset_materializations_for_node("allocator_quotas")[0].metadata
    rows = _rows(store, "SELECT agent, quota, status, slots_won, estimate, estimate_low, estimate_high "
                        "FROM allocator_quotas")
    return meta, {r[0]: r[1:] for r in rows}


def test_the_budget_is_a_ceiling_a_losing_agent_is_held_back(store):
    _losing_momentum(store)
    meta, rows = _decided(store)
    quotas = {a: r[0] for a, r in rows.items()}
    assert quotas["regime_watcher"] == 4 and quotas["cross_venue_arb"] == 20  # minimum; earns, at its cap
    assert quotas["momentum"] <= 1 and rows["momentum"][1] == "held back"  # was 36 of 60: the budget had to go
    assert meta["held_back_runs"].value == 60 - sum(quotas.values()) >= 35
    assert meta["shortfall_runs"].value == 0 and meta["value_floor"].value == 0.0
    assert rows["cross_venue_arb"][1] == "capped" and rows["regime_watcher"][1] == "at minimum"
    estimate, low, high = rows["momentum"][3:]
    assert low < estimate < high < 0  # the explanation: its whole interval lies below the floor
    (record, held) = _rows(store, "SELECT record, held_back FROM allocator_decisions")[0]
    record = json.loads(record)
    assert held == record["held_back"] == meta["held_back_runs"].value
    assert record["explanations"]["momentum"]["status"] == "held back"
    assert record["explanations"]["cross_venue_arb"]["slots_won"] == 20


def test_a_floor_of_minus_inf_spends_the_budget_as_the_prototype_did(store, pipeline_home):
    (pipeline_home / "config.toml").write_text("[allocation]\nvalue_floor = -inf\n")
    _losing_momentum(store)
    meta, rows = _decided(store)
    assert {a: r[0] for a, r in rows.items()} == {"regime_watcher": 4, "cross_venue_arb": 20, "momentum": 36}
    assert meta["held_back_runs"].value == 0 and meta["value_floor"].value == "none: the budget is spent"


def test_asset_metadata_explains_each_agent_in_a_table(store):
    _losing_momentum(store)
    meta, rows = _decided(store)
    table = meta["explanation"]
    assert isinstance(table, dg.TableMetadataValue)
    columns = [c.name for c in table.schema.columns]
    assert columns[:4] == ["agent", "kind", "strategy", "status"]
    assert {"quota", "slots_won", "estimate", "interval_low", "interval_high"} <= set(columns)
    by_agent = {r.data["agent"]: r.data for r in table.records}
    assert set(by_agent) == {"cross_venue_arb", "momentum", "regime_watcher"}
    for agent, data in by_agent.items():
        quota, status, slots_won, estimate, low, high = rows[agent]
        assert (data["quota"], data["status"], data["slots_won"]) == (quota, status, slots_won)
        assert data["estimate"] == round(estimate, 4) and data["interval_low"] == round(low, 4)
        assert data["interval_high"] == round(high, 4)
    assert by_agent["regime_watcher"]["min_runs"] == 4 and by_agent["cross_venue_arb"]["max_runs"] == 20
    # how likely each is above the floor: the loser is held back on its posterior, the earner is credibly above
    assert by_agent["momentum"]["p_above_floor"] < 0.25 < 0.75 < by_agent["cross_venue_arb"]["p_above_floor"]
    assert "| held back |" in meta["quotas"].value


def test_a_store_decided_before_the_explanations_migrates_and_keeps_its_rows(store):
    from agent_pipeline.store.migrations import migrate

    old_period = datetime(2026, 1, 1, 10, tzinfo=UTC)
    with store.connect() as conn:  # a file written by the previous schema, with one decision in it
        migrate(conn, ALLOCATION.component, ALLOCATION.migrations[:1])
        conn.execute("INSERT INTO allocator_quotas VALUES (?, 'momentum', 'momentum', 'signal', 36, 0.0, 0.1, "
                     "'glr_thompson', ?)", [old_period, old_period])
        conn.execute("INSERT INTO allocator_decisions VALUES (?, 'glr_thompson', 1, 0, ?, '{}')",
                     [old_period, old_period])
    _losing_momentum(store)
    _, rows = _decided(store)
    assert rows["momentum"][1] == "held back"
    old = _rows(store, "SELECT quota, status, estimate FROM allocator_quotas WHERE period_start = "
                       "'2026-01-01 10:00:00+00'")
    assert old == [(36, None, None)]  # decided before v2: no explanation, nothing invented
    assert _rows(store, "SELECT count(*), count(held_back) FROM allocator_decisions") == [(2, 1)]


def test_asset_reads_only_the_last_window_from_agent_rewards(store, pipeline_home):
    (pipeline_home / "config.toml").write_text("[allocation]\nhistory_window = 7\n")
    with store.connect() as conn:
        conn.execute("CREATE TABLE agent_rewards (event_id VARCHAR, agent VARCHAR, strategy VARCHAR, kind VARCHAR, "
                     "started_at TIMESTAMPTZ, reward DOUBLE)")
        t0 = datetime.now(UTC) - timedelta(hours=1)
        conn.executemany("INSERT INTO agent_rewards VALUES (?, ?, NULL, NULL, ?, ?)",
                         [(f"e{i}", "momentum", t0 + timedelta(seconds=i), None if i == 19 else float(i))
                          for i in range(20)])
    result = dg.materialize([allocator_quotas()], resources={"store": StoreResource()},
                            run_config={"ops": {"allocator_quotas": {"config": {"policy": "ucb"}}}})
    meta = result.asset_materializations_for_node("allocator_quotas")[0].metadata
    assert meta["reward_table"].value == "agent_rewards" and meta["rewards_observed"].value == 7
    assert meta["policy"].value == "ucb"


def test_asset_refuses_while_reward_collapse_fails(store):
    """A materialization by hand meets the blocking check the automation respects: the allocator evaluates
    reward_collapse again on the stored reward_distributions (the rows the failed check judged) and refuses."""
    from agent_pipeline.reward import RewardConfig
    from agent_pipeline.reward.distributions import refresh_distributions
    from agent_pipeline.reward.history import recompute_window
    from agent_pipeline_tests.reward.helpers import ev, write_events

    now = datetime.now(UTC)
    start = now - timedelta(days=6)
    steady = [ev("momentum", start + timedelta(minutes=10 * i), reward=0.5, imported=True) for i in range(6 * 24 * 6)]
    collapsed = [ev("momentum", now - timedelta(minutes=i + 1), reward=-2.0, imported=True) for i in range(30)]
    write_events(store, steady + collapsed)  # a steady week, then a collapsed last hour
    recompute_window(store, start - timedelta(days=1), now + timedelta(minutes=1), RewardConfig())
    refresh_distributions(store)
    result = dg.materialize([allocator_quotas()], resources={"store": StoreResource()}, raise_on_error=False)
    assert not result.success
    assert "reward_collapse" in str(result.all_events) and "previous quotas stay in force" in str(result.all_events)
    assert not _rows(store, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'allocator_quotas'"
                     )[0][0]  # nothing decided


def _decide(store, quotas: dict[str, int], period: datetime):
    with store.connect() as conn:
        ALLOCATION.ensure(store, conn)
        alloc = Allocation(quotas=quotas, scores={a: 0.0 for a in quotas}, policy="test")
        write_decision(conn, period, period, alloc, {a: ("signal", a) for a in quotas}, {"seed": None})


def _tick(sensor, cursor=None):
    ctx = dg.build_sensor_context(cursor=cursor, resources={"store": StoreResource()})
    return sensor(ctx)


def _slots(result):
    (request,) = result.run_requests
    return [(s["agent"], s["index"]) for s in request.run_config["ops"]["plan_tick"]["config"]["slots"]]


def test_scheduler_launches_each_agents_quota_spread_over_the_period(store, monkeypatch):
    period = period_start_for(datetime.now(UTC), 60)
    _decide(store, {"momentum": 12, "idle": 0}, period)
    sensor = scheduler.build_tick_sensor(PERIOD, TickConfig(max_slots_per_tick=5))

    monkeypatch.setattr(scheduler, "_now", lambda: period + timedelta(minutes=1))
    first = _tick(sensor)
    assert first.run_requests[0].run_key == f"tick:{period:%Y%m%dT%H%MZ}:4" and _slots(first) == [("momentum", 0)]
    assert json.loads(first.cursor)["launched"] == {"momentum": 1}
    again = _tick(sensor, first.cursor)  # same window: nothing new, a reason says when the next window opens
    assert isinstance(again, dg.SkipReason) and "already launched" in again.skip_message

    monkeypatch.setattr(scheduler, "_now", lambda: period + timedelta(minutes=30))
    second = _tick(sensor, first.cursor)  # slots 1..6 are due by minute 30; at most 5 per tick
    assert _slots(second) == [("momentum", i) for i in range(1, 6)]
    monkeypatch.setattr(scheduler, "_now", lambda: period + timedelta(minutes=30, seconds=15))
    third = _tick(sensor, second.cursor)
    assert _slots(third) == [("momentum", 6)]
    assert due_slots(period, 60, 12, period + timedelta(minutes=30)) == 7

    launched, cursor, now = 7, third.cursor, period + timedelta(minutes=59)
    monkeypatch.setattr(scheduler, "_now", lambda: now)
    while not isinstance(result := _tick(sensor, cursor), dg.SkipReason):
        launched += len(_slots(result))
        cursor = result.cursor
        now += timedelta(seconds=15)  # the next window
    assert launched == 12 and "12/12 launched" in result.skip_message

    # the next period starts over under its own run keys, with the quota still in force
    monkeypatch.setattr(scheduler, "_now", lambda: period + timedelta(minutes=60))
    nxt = _tick(sensor, cursor)
    assert nxt.run_requests[0].run_key == f"tick:{period + timedelta(hours=1):%Y%m%dT%H%MZ}:0"
    assert _slots(nxt) == [("momentum", 0)]  # quota 0 (idle) launches nothing


def test_scheduler_skips_without_quotas_or_when_the_store_is_busy(store):
    sensor = scheduler.build_tick_sensor(PERIOD, TickConfig())
    assert "no store yet" in _tick(sensor).skip_message
    with store.connect():
        pass  # the file now exists, without allocator tables
    assert "no allocation yet" in _tick(sensor).skip_message
    _decide(store, {"other": 0}, period_start_for(datetime.now(UTC), 60))
    assert "no slot due" in _tick(sensor).skip_message
    with store.connect():  # another process would hold this lock while writing
        busy = _tick(sensor)
    assert isinstance(busy, dg.SkipReason) and "store busy" in busy.skip_message


@pytest.mark.parametrize("quota", [1, 4, 60])
def test_due_slots_cover_the_quota_exactly_once(quota):
    start = datetime(2026, 1, 1, 10, tzinfo=UTC)
    counts = [due_slots(start, 60, quota, start + timedelta(seconds=s)) for s in range(0, 3600, 7)]
    assert counts[0] == 1 and counts[-1] == quota and counts == sorted(counts)
    assert due_slots(start, 60, quota, start - timedelta(seconds=1)) == 0


def test_asset_on_an_empty_home_explores_every_agent(store):
    assert not store.path.exists()
    result = dg.materialize([allocator_quotas()], resources={"store": StoreResource()})
    meta = result.asset_materializations_for_node("allocator_quotas")[0].metadata
    assert meta["reward_table"].value == "none yet" and meta["rewards_observed"].value == 0
    quotas = dict(_rows(store, "SELECT agent, quota FROM allocator_quotas"))
    # nothing is known yet: every agent gets its exploratory run; beyond that, a slot goes to an agent only when
    # its draw from the prior exceeds the floor, and the rest is held back
    assert all(q >= 1 for q in quotas.values())
    assert sum(quotas.values()) + meta["held_back_runs"].value == 60 and meta["shortfall_runs"].value == 0


def test_asset_reads_no_further_back_than_history_days(store, pipeline_home):
    (pipeline_home / "config.toml").write_text("[allocation]\nhistory_days = 2\n")
    with store.connect() as conn:
        conn.execute("CREATE TABLE agent_rewards (event_id VARCHAR, agent VARCHAR, strategy VARCHAR, kind VARCHAR, "
                     "started_at TIMESTAMPTZ, reward DOUBLE)")
        now = datetime.now(UTC)
        conn.executemany("INSERT INTO agent_rewards VALUES (?, 'momentum', NULL, NULL, ?, 1.0)",
                         [(f"old{i}", now - timedelta(days=3, seconds=i)) for i in range(5)] +
                         [(f"new{i}", now - timedelta(hours=1, seconds=i)) for i in range(3)])
    result = dg.materialize([allocator_quotas()], resources={"store": StoreResource()})
    assert result.asset_materializations_for_node("allocator_quotas")[0].metadata["rewards_observed"].value == 3
