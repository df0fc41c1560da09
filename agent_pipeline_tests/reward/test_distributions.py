"""Rolling reward distributions from DuckDB SQL, checked number by number against numpy on the same data."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_pipeline.reward import RewardConfig, RewardHistoryConfig
from agent_pipeline.reward.checks import (
    collapsed_agents,
    finite_distributions,
    finite_rewards,
    freshness,
    plausible_range,
    reward_collapse,
)
from agent_pipeline.reward.config import CollapseConfig
from agent_pipeline.reward.distributions import read_distributions, refresh_distributions
from agent_pipeline.reward.history import recompute_window
from agent_pipeline_tests.reward.helpers import ev, write_events

AS_OF = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)


def build_history(store, seed=7):
    """Two agents over ten days at random times, with failures, costs, latencies, and a third that stopped."""
    rng = np.random.default_rng(seed)
    events, truth = [], []
    for agent, n, loc in (("alpha", 700, 0.2), ("beta", 400, -0.1)):
        offsets = np.sort(rng.uniform(0, 10 * 86400, n))
        for i, off in enumerate(offsets):
            at = AS_OF - timedelta(seconds=float(off))
            failed = rng.random() < 0.05
            reward = None if failed else float(rng.normal(loc, 1.0))
            cost = None if rng.random() < 0.3 else float(rng.uniform(0, 0.01))
            latency = float(rng.exponential(0.5))
            events.append(ev(agent, at, reward=reward, imported=True, error="boom" if failed else None,
                             cost=cost, latency=latency, event_id=f"{agent}-{i}"))
            truth.append((agent, at, reward, failed, cost, latency))
    events.append(ev("gamma", AS_OF - timedelta(days=30), reward=1.0, imported=True, event_id="gamma-0"))
    truth.append(("gamma", AS_OF - timedelta(days=30), 1.0, False, None, 0.1))
    events.append(ev("alpha", AS_OF + timedelta(minutes=5), reward=50.0, imported=True, event_id="future"))
    write_events(store, events)
    recompute_window(store, AS_OF - timedelta(days=60), AS_OF + timedelta(days=1), RewardConfig())
    return truth


def expected(rows):
    rewards = np.array([r[2] for r in rows if r[2] is not None], dtype=float)
    costs = np.array([r[4] for r in rows if r[4] is not None], dtype=float)
    out = {"runs": len(rows), "errors": sum(r[3] for r in rows), "n": len(rewards)}
    out["error_rate"] = out["errors"] / len(rows)
    out["mean"] = rewards.mean()
    out["std"] = rewards.std(ddof=1)
    for q in (5, 25, 50, 75, 95):
        out[f"p{q:02d}"] = np.quantile(rewards, q / 100)
    out["cvar05"] = rewards[rewards <= out["p05"]].mean()
    out["win_rate"] = (rewards > 0).mean()
    out["mean_cost_usd"] = costs.mean()
    out["p95_latency_seconds"] = np.quantile([r[5] for r in rows], 0.95)
    return out


def test_distributions_match_numpy(store):
    truth = build_history(store)
    snap = refresh_distributions(store, as_of=AS_OF, last_n_runs=50)
    frame = read_distributions(store)
    assert len(frame) == len(snap.frame) == 3 * 4  # 3 agents x (1h, 1d, 7d, last_50)
    got = {(r["agent"], r["window"]): r for _, r in frame.iterrows()}

    for agent in ("alpha", "beta"):
        mine = sorted((r for r in truth if r[0] == agent), key=lambda r: r[1])
        windows = {
            "1h": [r for r in mine if AS_OF - timedelta(hours=1) < r[1] <= AS_OF],
            "1d": [r for r in mine if AS_OF - timedelta(days=1) < r[1] <= AS_OF],
            "7d": [r for r in mine if AS_OF - timedelta(days=7) < r[1] <= AS_OF],
            "last_50": mine[-50:],
        }
        for window, rows in windows.items():
            row = got[(agent, window)]
            if len(rows) < 2:
                continue
            for key, value in expected(rows).items():
                assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (agent, window, key)
        assert got[(agent, "7d")]["window_start"] == AS_OF - timedelta(days=7)
        assert got[(agent, "7d")]["window_end"] == AS_OF
        assert got[(agent, "last_50")]["window_end"] == windows["last_50"][-1][1]

    # an agent that stopped a month ago: no runs in the time windows, its last run in last_50
    assert got[("gamma", "1d")]["n"] == 0 and np.isnan(got[("gamma", "1d")]["mean"])
    assert got[("gamma", "last_50")]["n"] == 1 and got[("gamma", "last_50")]["mean"] == 1.0
    # the event after as_of is outside every window
    assert got[("alpha", "1h")]["p95"] < 50


def test_refresh_replaces_the_snapshot(store):
    build_history(store)
    refresh_distributions(store, as_of=AS_OF, last_n_runs=10)
    refresh_distributions(store, as_of=AS_OF, last_n_runs=20)
    frame = read_distributions(store)
    assert set(frame["window"]) == {"1h", "1d", "7d", "last_20"} and len(frame) == 12


def test_empty_history_gives_an_empty_snapshot(store):
    snap = refresh_distributions(store, as_of=AS_OF)
    assert snap.frame.empty and snap.events == 0


def test_row_checks_pass_on_clean_data_and_fail_on_bad(store):
    build_history(store)
    config = RewardHistoryConfig(min_reward=-10, max_reward=10, freshness_hours=1)
    with store.connect() as conn:
        assert finite_rewards(conn).passed
        assert plausible_range(conn, config).passed is False  # the 50.0 "future" reward
        assert freshness(conn, config, AS_OF).passed  # the newest event is 5 minutes after as_of
        assert not freshness(conn, config, AS_OF + timedelta(hours=3)).passed
        conn.execute("UPDATE agent_rewards SET reward = 'Infinity'::DOUBLE WHERE event_id = 'alpha-1'")
        bad = finite_rewards(conn)
        assert not bad.passed and bad.metadata["by_agent"] == {"alpha": 1}
        ok = plausible_range(conn, RewardHistoryConfig(min_reward=-10, max_reward=100))
        assert ok.passed  # infinities are the finite check's business, not the range's


def test_collapse_check_flags_only_the_collapsed_agent(store):
    events = []
    for agent in ("steady", "falling"):
        for i in range(6 * 24 * 6):  # every 10 minutes for six days, before the last hour
            events.append(ev(agent, AS_OF - timedelta(hours=1, minutes=10 * i + 1), reward=0.5, imported=True))
        for i in range(30):
            events.append(ev(agent, AS_OF - timedelta(minutes=2 * i), imported=True,
                             reward=-2.0 if agent == "falling" else 0.5))
    write_events(store, events)
    recompute_window(store, AS_OF - timedelta(days=8), AS_OF + timedelta(hours=1), RewardConfig())
    frame = refresh_distributions(store, as_of=AS_OF).frame
    config = CollapseConfig()
    assert [c.agent for c in collapsed_agents(frame, config)] == ["falling"]
    outcome = reward_collapse(frame, config)
    assert not outcome.passed and outcome.metadata["collapsed"] == ["falling"]
    assert reward_collapse(frame, CollapseConfig(min_runs=31)).passed  # too few recent runs
    assert finite_distributions(frame).passed
    frame.loc[0, "mean"] = float("inf")
    assert not finite_distributions(frame).passed


@settings(max_examples=25, deadline=None)
@given(rewards=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=60),
       failed=st.lists(st.booleans(), min_size=60, max_size=60))
def test_any_reward_sample_matches_numpy(rewards, failed):
    import duckdb

    from agent_pipeline.reward.distributions import compute_distributions
    from agent_pipeline.reward.history import REWARDS

    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")  # as the store's own connections are
    for script in REWARDS.migrations:
        conn.execute(script)
    rows = []
    for i, r in enumerate(rewards):
        is_failed = failed[i] and i > 1  # keep at least two rewards
        rows.append((f"e{i}", "a", AS_OF - timedelta(minutes=i), None if is_failed else r, is_failed))
    conn.executemany("""INSERT INTO agent_rewards (event_id, agent, started_at, reward, pricing, computed_at,
                        failed) VALUES (?, ?, ?, ?, 'recorded', now(), ?)""", rows)
    frame = compute_distributions(conn, as_of=AS_OF, last_n_runs=1000)
    got = frame[frame["window"] == "1d"].iloc[0]
    values = np.array([r[3] for r in rows if r[3] is not None])
    assert got["n"] == len(values) and got["runs"] == len(rows)
    assert got["mean"] == pytest.approx(values.mean(), rel=1e-9, abs=1e-6)
    assert got["std"] == pytest.approx(values.std(ddof=1), rel=1e-6, abs=1e-6)
    for q in (5, 25, 50, 75, 95):
        assert got[f"p{q:02d}"] == pytest.approx(np.quantile(values, q / 100), rel=1e-9, abs=1e-6)
    assert got["cvar05"] == pytest.approx(values[values <= np.quantile(values, 0.05)].mean(), rel=1e-9, abs=1e-6)
    assert got["win_rate"] == pytest.approx((values > 0).mean())
