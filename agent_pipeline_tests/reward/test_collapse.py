"""Reward collapse has one definition: the rule itself, the one table it reads, the retired keys that name their
replacement, and the breaker (run-time rewards of live runs) agreeing with the Dagster check (repriced
distributions) on the same runs."""

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.reward import RewardConfig
from agent_pipeline.reward.checks import collapsed_agents
from agent_pipeline.reward.collapse import WindowStats, judge
from agent_pipeline.reward.config import CollapseConfig
from agent_pipeline.reward.distributions import refresh_distributions
from agent_pipeline.reward.history import recompute_window
from agent_pipeline.settings import ConfigError
from agent_pipeline.store import Store
from agent_pipeline.store.events import AgentEvent, append_frame, events_frame
from agent_pipeline.trading import GuardrailConfig
from agent_pipeline.trading.breaker import read_breaker
from agent_pipeline.trading.store_state import StoreGateState

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
RULE = CollapseConfig()  # min_runs 20, drop_std 3, min_drop 0.1, no floor


def test_a_drop_beyond_the_margin_collapses_and_the_gap_is_how_far_below_the_line():
    verdict = judge("a", WindowStats(20, -0.25), WindowStats(900, 0.125, 0.03125), RULE)
    assert verdict is not None and verdict.rules == ("drop",)
    assert verdict.margin == 0.1 and verdict.gap == -0.25 - (0.125 - 0.1)
    assert "mean reward fell" in verdict.text() and "'a'" in verdict.text()
    # a noisy week widens the margin to 3 std: the same hour is no collapse
    assert judge("a", WindowStats(20, -0.25), WindowStats(900, 0.125, 0.25), RULE) is None


def test_too_few_runs_or_no_usable_mean_is_no_verdict():
    week = WindowStats(900, 0.5, 0.01)
    assert judge("a", WindowStats(19, -5.0), week, RULE) is None
    assert judge("a", WindowStats(50, -5.0), WindowStats(19, 0.5, 0.01), RULE) is None
    for bad in (None, math.nan, math.inf):
        assert judge("a", WindowStats(50, bad), week, RULE) is None
        assert judge("a", WindowStats(50, -5.0), WindowStats(900, bad, 0.01), RULE) is None


def test_an_undefined_week_std_counts_as_zero_so_min_drop_still_applies():
    for std in (None, math.nan):
        assert judge("a", WindowStats(20, 0.41), WindowStats(900, 0.5, std), RULE) is None
        assert judge("a", WindowStats(20, 0.39), WindowStats(900, 0.5, std), RULE).margin == 0.1


def test_the_floor_judges_the_last_hour_alone_and_the_gap_is_the_nearer_line():
    floor = CollapseConfig(floor=0.0)
    verdict = judge("new", WindowStats(20, -0.5), WindowStats(20, -0.5), floor)  # no drop: the week is the hour
    assert verdict.rules == ("floor",) and verdict.gap == -0.5 and "below the floor 0" in verdict.text()
    assert judge("new", WindowStats(20, 0.0), WindowStats(0, None), floor) is None  # on the floor is not below it
    both = judge("a", WindowStats(20, -1.0), WindowStats(900, 0.5, 0.01), floor)
    assert both.rules == ("drop", "floor") and both.gap == min(-1.0 - (0.5 - 0.1), -1.0)


def _runs(agent, start, hours, n, rng, loc, failures=0.05):
    step = hours * 3600.0 / n
    out = []
    for i in range(n):
        failed = rng.random() < failures
        out.append((agent, start - timedelta(seconds=step * i + rng.uniform(0, step)),
                    None if failed else float(rng.normal(loc, 0.05))))
    return out


def _history(rng):
    """Three agents over eight days; one collapses in the last hour, one sits near the line (with about the
    minimum number of runs), one is steady."""
    runs = []
    for agent, hour_loc, hour_runs in (("falling", -0.3, 30), ("edge", 0.05, int(rng.integers(15, 26))),
                                       ("steady", 0.2, 30)):
        runs += _runs(agent, NOW - timedelta(hours=1), 24 * 7, 400, rng, 0.2)
        runs += _runs(agent, NOW, 1, hour_runs, rng, hour_loc)
    return runs


def _write(store, runs, *, live):
    append_frame(store, events_frame([
        AgentEvent(run_id=f"r{i}", agent=agent, started_at=at, latency_seconds=0.1, reward=reward,
                   error=None if reward is not None else "MarketDataError: injected",
                   error_type=None if reward is not None else "MarketDataError",
                   source="dagster" if live else "import", origin="computed" if live else "imported")
        for i, (agent, at, reward) in enumerate(runs)]))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_breaker_and_the_check_find_the_same_collapses_in_the_same_runs(store, tmp_path, seed):
    """The breaker reads live runs' rewards from agent_events; the check reads reward_distributions built from
    agent_rewards. Fed the same rewards, both apply one rule to the same windows and say the same thing."""
    rng = np.random.default_rng(seed)
    runs = _history(rng)
    rule = CollapseConfig(floor=float(rng.choice([-0.5, 0.0])) if seed % 2 else None)
    _write(store, runs, live=True)
    with store.connect(read_only=True) as conn:
        reading = read_breaker(conn, GuardrailConfig(breaker_on_reward_collapse=True, reward_collapse=rule), NOW)
    repriced = Store(tmp_path / "repriced" / "events.duckdb")
    _write(repriced, runs, live=False)  # recorded rewards: repricing keeps them as they are
    recompute_window(repriced, NOW - timedelta(days=9), NOW + timedelta(minutes=1), RewardConfig())
    checked = collapsed_agents(refresh_distributions(repriced, as_of=NOW).frame, rule)
    by_breaker = sorted(b.split("'")[1] for b in reading.breaches if b.startswith("reward collapse"))
    assert by_breaker == [c.agent for c in checked]
    assert "falling" in by_breaker and "steady" not in by_breaker


def test_the_breaker_judges_collapse_only_when_switched_on_and_per_agent(store):
    rng = np.random.default_rng(5)
    _write(store, _history(rng), live=True)
    with store.connect(read_only=True) as conn:
        off = read_breaker(conn, GuardrailConfig(), NOW)
        on = read_breaker(conn, GuardrailConfig(breaker_on_reward_collapse=True), NOW)
    assert not off.breached and off.reward_n == 0  # the prototype's breaker never judged reward
    assert on.breached and "reward collapse: agent 'falling'" in on.reason
    assert "'steady'" not in on.reason and on.reward_n > 0 and on.baseline_n > on.reward_n
    # the gate asks the same question before each order, so it denies before the sensor's next tick
    gate = StoreGateState(store, GuardrailConfig(breaker_on_reward_collapse=True))
    assert "reward collapse: agent 'falling'" in gate.breaker_breach(NOW)
    assert StoreGateState(store, GuardrailConfig()).breaker_breach(NOW) is None


def test_one_table_reaches_the_check_the_breaker_and_the_alert_inputs(pipeline_home):
    (pipeline_home / "config.toml").write_text(
        "[guardrails]\nbreaker_on_reward_collapse = true\n[reward.collapse]\nmin_runs = 7\ndrop_std = 2.5\n"
        "min_drop = 0.05\nfloor = -1.5\n")
    settings = Settings.load()
    expected = CollapseConfig(min_runs=7, drop_std=2.5, min_drop=0.05, floor=-1.5)
    assert settings.reward.collapse == expected and settings.guardrails.reward_collapse == expected
    inputs = settings.alert_inputs()
    assert (inputs.collapse_min_runs, inputs.collapse_drop_std, inputs.collapse_min_drop, inputs.collapse_floor) == (
        7, 2.5, 0.05, -1.5)


@pytest.mark.parametrize("table, key, replacement", [
    ("guardrails", "reward_floor = 0.0", "[reward.collapse] floor"),
    ("guardrails", "max_reward_drop = 0.5", "[reward.collapse] min_drop"),
    ("guardrails", "min_reward_samples = 10", "[reward.collapse] min_runs"),
    ("guardrails", "reward_window_sec = 900", "fixed at 1h"),
    ("guardrails", "reward_baseline_sec = 86400", "fixed at 7d"),
    ("reward.history", "collapse_min_runs = 20", "[reward.collapse]: set its min_runs"),
    ("reward.history", "collapse_drop_std = 3.0", "[reward.collapse]: set its drop_std"),
    ("reward.history", "collapse_min_drop = 0.1", "[reward.collapse]: set its min_drop"),
])
def test_a_retired_collapse_key_fails_to_load_naming_its_replacement(pipeline_home, table, key, replacement):
    (pipeline_home / "config.toml").write_text(f"[{table}]\n{key}\n")
    with pytest.raises(ConfigError) as raised:
        Settings.load()
    message = str(raised.value)
    assert f"[{table}] {key.split(' = ')[0]} is retired" in message and replacement in message


@pytest.mark.parametrize("key, bad", [("min_runs", 0), ("drop_std", 0), ("min_drop", -0.1), ("floor", math.nan),
                                      ("floor", "low"), ("min_runs", True)])
def test_collapse_parameters_are_checked_naming_table_and_key(key, bad):
    with pytest.raises(ConfigError, match=rf"\[reward\.collapse\] {key}"):
        CollapseConfig.from_table({key: bad})
