"""Recomputing a window of reward history: which reward each event gets, and idempotent rewrites."""

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from agent_pipeline.reward import RewardConfig, RiskBudget, score_output
from agent_pipeline.reward.history import params_hash, read_rewards, recompute_window
from agent_pipeline_tests.reward.helpers import ev, write_events

DAY = datetime(2024, 3, 1, tzinfo=UTC)


def test_each_event_gets_the_reward_its_source_allows(store):
    arb_out = [{"symbol": "BTC/USDT", "profit_pct": 0.5}]
    write_events(store, [
        ev("arb", DAY + timedelta(hours=1), strategy="cross_venue_arb", output=arb_out, reward=99.0),
        ev("watch", DAY + timedelta(hours=2), strategy="regime", output=[{"regime": "calm"}], reward=0.0),
        ev("arb", DAY + timedelta(hours=3), strategy="cross_venue_arb", error="boom"),
        ev("old", DAY + timedelta(hours=4), reward=0.7, imported=True),
        ev("old", DAY + timedelta(hours=5), reward=None, imported=True, error="x"),
        ev("old", DAY + timedelta(hours=6), output=arb_out, reward=5.0, imported=True),
        ev("arb", DAY + timedelta(days=1), strategy="cross_venue_arb", output=arb_out),  # outside the window
    ])
    result = recompute_window(store, DAY, DAY + timedelta(days=1), RewardConfig())
    assert result.inserted == 6 and result.deleted == 0
    assert result.by_pricing == {"recomputed": 3, "failed": 2, "recorded": 1}
    rows = read_rewards(store)
    assert len(rows) == 6
    got = {(r.agent, r.started_at.hour): (r.reward, r.pricing, r.failed) for r in rows.itertuples()}
    assert got[("arb", 1)][0] == pytest.approx(75.25 / 300) and got[("arb", 1)][1] == "recomputed"
    assert got[("watch", 2)][:2] == (0.0, "recomputed")
    assert math.isnan(got[("arb", 3)][0]) and got[("arb", 3)][1:] == ("failed", True)
    assert got[("old", 4)] == (0.7, "recorded", False)
    assert got[("old", 5)][1] == "failed"
    # imported with raw output: repriced with the default budget, its recorded 5.0 is not kept
    assert got[("old", 6)][0] == pytest.approx(75.25 / 300) and got[("old", 6)][1] == "recomputed"
    assert set(rows["params_hash"]) == {params_hash(RewardConfig())}


def test_rewriting_a_window_is_idempotent_and_reprices_only_what_changed(store):
    events = [ev("m", DAY + timedelta(minutes=10 * i), strategy="momentum", output=[{"profit_pct": 0.1 * i}])
              for i in range(12)]
    events += [ev("a", DAY + timedelta(minutes=7 * i), strategy="cross_venue_arb", output=[{"profit_pct": 0.2}])
               for i in range(5)]
    write_events(store, events)
    window = (DAY, DAY + timedelta(days=1))
    first = recompute_window(store, *window, RewardConfig())
    again = recompute_window(store, *window, RewardConfig())
    assert (again.inserted, again.deleted, again.changed) == (17, 17, 0)
    assert len(read_rewards(store)) == 17

    budgets = dict(RewardConfig().budgets, momentum=RiskBudget(20_000.0, 200.0))
    changed = recompute_window(store, *window, RewardConfig(budgets=budgets))
    assert changed.changed == 12  # every momentum reward scales with its capital; arbitrage is untouched
    assert changed.params_hash != first.params_hash
    rows = read_rewards(store)
    arb = rows[rows["agent"] == "a"]["reward"]
    assert (arb == score_output("a", "cross_venue_arb", [{"profit_pct": 0.2}], RewardConfig())[0]).all()


def test_non_finite_recorded_reward_never_reaches_the_table(store):
    write_events(store, [ev("old", DAY, reward=1.0, imported=True)])
    with store.connect() as conn:
        conn.execute("UPDATE agent_events SET reward = 'NaN'::DOUBLE")
    result = recompute_window(store, DAY, DAY + timedelta(days=1), RewardConfig())
    assert result.by_pricing == {"invalid": 1}
    assert read_rewards(store)["reward"].isna().all()


def test_window_must_be_aware_and_non_empty(store):
    with pytest.raises(ValueError, match="timezone-aware"):
        recompute_window(store, datetime(2024, 1, 1), datetime(2024, 1, 2), RewardConfig())
    with pytest.raises(ValueError, match="empty window"):
        recompute_window(store, DAY, DAY, RewardConfig())


def test_recomputed_reward_is_score_output(store):
    out = [{"profit_pct": 0.37}]
    write_events(store, [ev("m", DAY, strategy="momentum", output=out)])
    config = RewardConfig(fill_prob=0.55, fees_bps=3.0)
    recompute_window(store, DAY, DAY + timedelta(hours=1), config)
    assert read_rewards(store)["reward"].iloc[0] == score_output("m", "momentum", out, config)[0]


def test_repricing_charges_each_events_own_cost(store):
    out = [{"profit_pct": 0.5}]
    write_events(store, [
        ev("arb", DAY + timedelta(hours=1), strategy="cross_venue_arb", output=out, cost=0.75, event_id="paid"),
        ev("arb", DAY + timedelta(hours=2), strategy="cross_venue_arb", output=out, event_id="unknown"),
        ev("watch", DAY + timedelta(hours=3), strategy="regime", output=[{"regime": "calm"}], cost=0.3,
           event_id="watch"),
        ev("old", DAY + timedelta(hours=4), reward=0.7, imported=True, cost=5.0, event_id="recorded"),
        ev("arb", DAY + timedelta(hours=5), strategy="cross_venue_arb", output=out, cost=1.0, event_id="nan"),
        ev("arb", DAY + timedelta(hours=6), strategy="cross_venue_arb", output=out, cost=1.0, event_id="neg"),
    ])
    with store.connect() as conn:  # costs the instrumentation would refuse, as a hand-edited store may hold
        conn.execute("UPDATE agent_events SET cost_usd = 'NaN'::DOUBLE WHERE event_id = 'nan'")
        conn.execute("UPDATE agent_events SET cost_usd = -1.0 WHERE event_id = 'neg'")
    window = (DAY, DAY + timedelta(days=1))
    charged = recompute_window(store, *window, RewardConfig())
    rows = read_rewards(store).set_index("event_id")
    assert rows.loc["paid", "reward"] == pytest.approx((75.25 - 0.75) / 300)
    assert rows.loc["unknown", "reward"] == pytest.approx(75.25 / 300)  # unknown cost: nothing charged
    assert rows.loc["watch", "reward"] == pytest.approx(-0.3 / 300)
    assert rows.loc["recorded", "reward"] == 0.7 and rows.loc["recorded", "pricing"] == "recorded"
    for bad in ("nan", "neg"):  # never a guess: the reward is dropped and counted
        assert pd.isna(rows.loc[bad, "reward"]) and rows.loc[bad, "pricing"] == "invalid"
    assert charged.by_pricing == {"recomputed": 3, "recorded": 1, "invalid": 2}

    free = recompute_window(store, *window, RewardConfig(charge_run_cost=False))
    rows = read_rewards(store).set_index("event_id")
    assert rows.loc["paid", "reward"] == rows.loc["nan", "reward"] == pytest.approx(75.25 / 300)
    assert rows.loc["watch", "reward"] == 0.0
    assert free.params_hash != charged.params_hash and free.changed == 4
