"""The budget as a ceiling: ``value_floor`` holds back runs no agent is worth, exploration stays principled, and every
decision says why each agent got what it got."""

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest

from agent_pipeline.allocation import (
    POLICIES,
    AllocationConfig,
    AllocationError,
    make_allocator,
    make_bounds,
    violations,
)
from agent_pipeline.allocation.decision import AgentInfo, decide, record_json, replay
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.settings import ConfigError

LOSERS = {"l1": -0.5, "l2": -0.4, "l3": -0.6}


def build(policy: str, seed: int = 0, **params):
    return make_allocator(policy, seed=seed, **params) if POLICIES[policy].randomised else \
        make_allocator(policy, **params)


def feed(alloc, means, n, rng, noise=0.3):
    for _ in range(n):
        for agent, mu in means.items():
            alloc.observe(agent, mu + noise * rng.standard_normal())


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_without_a_floor_losers_take_the_budget_with_one_they_are_held_back(policy):
    alloc = build(policy)
    feed(alloc, LOSERS, 100, np.random.default_rng(1))
    spent = alloc.allocate(list(LOSERS), total_budget_runs=60)
    assert sum(spent.quotas.values()) == 60 and spent.held_back == 0 and spent.value_floor is None
    alloc = build(policy)  # a fresh one: a randomised policy draws again
    feed(alloc, LOSERS, 100, np.random.default_rng(1))
    floored = alloc.allocate(list(LOSERS), total_budget_runs=60, value_floor=0.0)
    assert floored.value_floor == 0.0 and floored.shortfall == 0
    assert sum(floored.quotas.values()) <= 2 and floored.held_back == 60 - sum(floored.quotas.values())
    assert all(e["status"] == "held back" for e in floored.explanations.values())
    bounds = make_bounds(list(LOSERS), 60)
    assert violations(bounds, floored.quotas, floored.shortfall, floored.held_back) == []


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_minimums_are_kept_and_a_winner_takes_what_its_cap_allows(policy):
    alloc = build(policy)
    feed(alloc, {**LOSERS, "win": 0.4, "watch": 0.0}, 100, np.random.default_rng(2))
    agents = ["win", "watch", *LOSERS]
    lo, hi = {"watch": 4, "l1": 2}, {"watch": 4, "win": 15}
    result = alloc.allocate(agents, lo, hi, total_budget_runs=60, value_floor=0.0)
    q, why = result.quotas, result.explanations
    assert q["watch"] == 4 and q["l1"] >= 2 and q["win"] == 15
    assert why["win"]["status"] == "capped" and why["win"]["slots_won"] == 15
    assert why["watch"]["status"] == "at minimum" and why["watch"]["slots_won"] == 0  # nothing to win
    assert why["l1"]["status"] == "held back" and why["l1"]["min_runs"] == 2
    assert result.held_back == 60 - sum(q.values()) >= 35
    assert violations(make_bounds(agents, 60, lo, hi), q, result.shortfall, result.held_back) == []


def test_a_floor_above_every_mean_holds_back_even_winners_and_a_low_floor_spends_like_none():
    alloc = build("glr_thompson", seed=5)
    feed(alloc, {"a": 0.2, "b": 0.1}, 100, np.random.default_rng(3))
    assert alloc.allocate(["a", "b"], total_budget_runs=40, value_floor=5.0).held_back == 40
    a, b = build("glr_thompson", seed=5), build("glr_thompson", seed=5)
    for alloc in (a, b):
        feed(alloc, {"a": 0.2, "b": 0.1}, 100, np.random.default_rng(3))
    none = a.allocate(["a", "b"], total_budget_runs=40)
    minus_inf = b.allocate(["a", "b"], total_budget_runs=40, value_floor=-math.inf)
    assert minus_inf.quotas == none.quotas and minus_inf.samples == none.samples
    assert minus_inf.value_floor is None and minus_inf.held_back == 0


def _wide_then_narrow(policy: str, seed: int) -> tuple[int, int]:
    """Runs beyond its minimum for an agent below the floor: after 3 noisy rewards, then after 2,000."""
    rng = np.random.default_rng(100 + seed)
    alloc = build(policy, seed=seed)
    for r in (-1.2, 0.9, -0.2):  # mean -0.17, but three rewards of spread ~0.9 say little
        alloc.observe("doubtful", r)
    wide = alloc.allocate(["doubtful"], total_budget_runs=50, value_floor=0.0).quotas["doubtful"]
    alloc = build(policy, seed=seed)
    feed(alloc, {"doubtful": -0.3}, 2000, rng, noise=1.0)
    narrow = alloc.allocate(["doubtful"], total_budget_runs=50, value_floor=0.0).quotas["doubtful"]
    return wide, narrow


@pytest.mark.parametrize("policy", ["glr_thompson", "thompson", "ucb", "glr_ucb"])
def test_a_held_back_agent_is_explored_while_its_posterior_allows_it(policy):
    outcomes = [_wide_then_narrow(policy, seed) for seed in range(5)]
    wide = [w for w, _ in outcomes]
    narrow = [n for _, n in outcomes]
    # a wide posterior: it still gets runs (UCB's optimism gives it them all; Thompson sampling only the slots in
    # which its draw exceeds the floor, and each run given narrows the later draws)
    assert all(w >= 1 for w in wide), wide
    if POLICIES[policy].randomised:
        assert all(w < 50 for w in wide), wide
    # after many losing rewards its posterior lies below the floor: next to nothing
    assert sum(narrow) <= 1, narrow


@pytest.mark.parametrize("bad", [float("nan"), math.inf, "0.0", True, [0.0]])
def test_an_invalid_floor_is_refused_naming_it(bad):
    alloc = build("ucb")
    with pytest.raises(AllocationError, match="value_floor"):
        alloc.allocate(["a"], total_budget_runs=5, value_floor=bad)


def test_violations_count_held_back_runs():
    bounds = make_bounds(["a", "b"], 10, max_runs={"a": 3})
    assert violations(bounds, {"a": 3, "b": 2}, 0, 5) == []
    assert any("held back" in v for v in violations(bounds, {"a": 3, "b": 2}, 0, 4))
    assert any("negative" in v for v in violations(bounds, {"a": 3, "b": 2}, 0, -1))


def test_the_strategy_cap_is_what_stops_a_sibling():
    alloc = build("ucb")
    feed(alloc, {"x1": 0.5, "x2": 0.45, "other": -0.5}, 100, np.random.default_rng(4))
    result = alloc.allocate(["x1", "x2", "other"], total_budget_runs=30, strategies={"x1": "x", "x2": "x"},
                            max_runs_per_strategy={"x": 12}, value_floor=0.0)
    assert result.quotas["x1"] + result.quotas["x2"] == 12
    assert result.explanations["x1"]["status"] == result.explanations["x2"]["status"] == "capped"
    assert result.explanations["other"]["status"] == "held back" and result.held_back == 30 - 12 - \
        result.quotas["other"]


def test_without_a_floor_an_outranked_agent_is_at_its_minimum_and_the_rest_allocated():
    alloc = build("ucb")
    feed(alloc, {"best": 0.5, "worst": -0.5}, 200, np.random.default_rng(5))
    result = alloc.allocate(["best", "worst"], min_runs={"worst": 3}, total_budget_runs=30)
    assert result.quotas == {"best": 27, "worst": 3}
    assert result.explanations["best"]["status"] == "allocated"
    assert result.explanations["worst"]["status"] == "at minimum"


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_estimates_come_with_an_interval_and_unseen_agents_are_explored(policy):
    alloc = build(policy)
    feed(alloc, {"a": 0.3, "b": -0.3}, 50, np.random.default_rng(6))
    result = alloc.allocate(["a", "b", "new"], total_budget_runs=20, value_floor=0.0)
    for agent in ("a", "b"):
        e = result.explanations[agent]
        assert e["low"] <= e["estimate"] <= e["high"] and e["high"] > e["low"]
    assert result.explanations["a"]["estimate"] > result.explanations["b"]["estimate"]
    assert result.quotas["new"] >= 1  # nothing is known of it yet: its one exploratory run
    json.dumps(result.record(), allow_nan=False)


def test_config_default_floor_and_its_validation(pipeline_home):
    assert AllocationConfig().value_floor == 0.0 and Settings.load().allocation.value_floor == 0.0
    (pipeline_home / "config.toml").write_text("[allocation]\nvalue_floor = -inf\n")
    assert Settings.load().allocation.value_floor is None  # spend the whole budget
    (pipeline_home / "config.toml").write_text("[allocation]\nvalue_floor = 0.05\n")
    assert Settings.load().allocation.value_floor == 0.05
    for bad in ("nan", "inf", '"zero"', "true"):
        (pipeline_home / "config.toml").write_text(f"[allocation]\nvalue_floor = {bad}\n")
        with pytest.raises(ConfigError, match="value_floor"):
            Settings.load()


def test_decision_record_carries_the_explanation_and_replays_with_the_floor():
    cfg = AllocationConfig.from_table({"total_budget_runs": 40, "watcher_min_runs": 3,
                                         "execution_sensitive_max_runs": 10})
    agents = [AgentInfo("arb", "execution-sensitive", "cross_venue_arb"), AgentInfo("mom", "signal", "momentum"),
              AgentInfo("watch", "watcher", "macro_regime")]
    rng = np.random.default_rng(8)
    pairs = [(a, float(m + 0.05 * rng.standard_normal())) for _ in range(40)
             for a, m in (("arb", 0.3), ("mom", -0.2), ("watch", 0.0))]
    start = datetime(2026, 1, 2, 10, tzinfo=UTC)
    allocation, record = decide(cfg, agents, pairs, start)
    record = json.loads(record_json(record))
    assert record["request"]["value_floor"] == 0.0 and record["value_floor"] == 0.0
    assert record["held_back"] == allocation.held_back == 40 - sum(allocation.quotas.values()) > 0
    assert record["explanations"]["arb"]["status"] == "capped"
    assert record["explanations"]["mom"]["status"] == "held back"
    again = replay(record, pairs)
    assert again.quotas == allocation.quotas and again.samples == allocation.samples
    assert again.held_back == record["held_back"] and json.loads(json.dumps(again.explanations)) == \
        record["explanations"]
    # a record written before the floor existed carries none: it replays as it was decided, spending the budget
    del record["request"]["value_floor"]
    old = replay(record, pairs)
    assert old.held_back == 0 and sum(old.quotas.values()) == 40


def _alternating(mean: float, n: int) -> list[float]:
    """``n`` rewards of exactly this mean and spread 1 (no sampling noise in the evidence itself)."""
    return [mean + (1.0 if i % 2 else -1.0) for i in range(n)]


def _beside_a_capped_winner(policy: str, seed: int, speculative: dict[str, list[float]], budget: int = 50,
                            **params) -> dict[str, int]:
    """Slots won by agents below the floor when the one agent credibly above it is capped at 6 runs."""
    alloc = build(policy, seed=seed, **params)
    for r in _alternating(0.5, 200):
        alloc.observe("win", r)
    for agent, rewards in speculative.items():
        for r in rewards:
            alloc.observe(agent, r)
    result = alloc.allocate(["win", *speculative], max_runs={"win": 6}, total_budget_runs=budget, value_floor=0.0)
    assert result.quotas["win"] == 6 and result.explanations["win"]["status"] == "capped"
    assert violations(make_bounds(["win", *speculative], budget, max_runs={"win": 6}), result.quotas,
                      result.shortfall, result.held_back) == []
    return {a: result.explanations[a]["slots_won"] for a in speculative}


@pytest.mark.parametrize("policy", ["glr_thompson", "thompson"])
def test_a_clear_losers_leftover_slots_shrink_to_none_as_evidence_grows_an_uncertain_one_still_runs(policy):
    doubtful = [-1.0, 0.9]  # mean -0.05 from two rewards: it may well be above the floor
    by_evidence = {n: [_beside_a_capped_winner(policy, seed, {"loser": _alternating(-0.3, n), "doubtful": doubtful})
                       for seed in range(5)] for n in (2, 8, 32, 256)}
    loser = {n: [won["loser"] for won in runs] for n, runs in by_evidence.items()}
    assert sum(loser[2]) >= 5, loser  # two rewards say little: it is still explored
    assert sum(loser[2]) >= sum(loser[8]) >= sum(loser[32]) >= sum(loser[256]), loser
    assert sum(loser[32]) == sum(loser[256]) == 0, loser  # its posterior has settled below the floor
    # the agent near the floor keeps getting runs, in every seed, whatever the loser beside it has shown
    assert all(won["doubtful"] >= 1 for runs in by_evidence.values() for won in runs), by_evidence


@pytest.mark.parametrize("policy", ["glr_thompson", "thompson"])
def test_leftover_slots_beside_capped_winners_do_not_multiply_a_losers_exploration(policy):
    """Per-slot draws gave a loser a run in every leftover slot where its draw beat the floor, so the more
    budget the caps left, the more it was re-explored; its runs are bounded by what its posterior allows."""
    loser = {"loser": _alternating(-0.3, 6)}
    small = [_beside_a_capped_winner(policy, seed, loser, budget=30)["loser"] for seed in range(5)]
    large = [_beside_a_capped_winner(policy, seed, loser, budget=500)["loser"] for seed in range(5)]
    assert max(small) <= 3 and max(large) <= 3, (small, large)


def test_floor_probability_leaves_spending_alone_and_is_validated():
    runs = []
    for fp in (0.0, 0.25, 0.5):
        alloc = build("glr_thompson", seed=3, floor_probability=fp)
        feed(alloc, {"a": 0.2, "b": -0.1}, 50, np.random.default_rng(9))
        runs.append(alloc.allocate(["a", "b"], max_runs={"a": 5}, total_budget_runs=40))
    assert runs[0].quotas == runs[1].quotas == runs[2].quotas and runs[0].samples == runs[2].samples
    assert runs[1].explanations["a"]["p_above_floor"] is None  # no floor: nothing is measured against one
    for bad in (-0.1, 0.6, float("nan"), "0.2"):
        with pytest.raises(ValueError, match="floor_probability"):
            build("glr_thompson", floor_probability=bad)


def test_the_explanation_says_how_likely_each_agent_is_above_the_floor():
    alloc = build("glr_thompson", seed=1)
    for agent, mean in (("win", 0.5), ("loser", -0.3)):
        for r in _alternating(mean, 100):
            alloc.observe(agent, r)
    result = alloc.allocate(["win", "loser"], max_runs={"win": 6}, total_budget_runs=30, value_floor=0.0)
    p = {a: result.explanations[a]["p_above_floor"] for a in ("win", "loser")}
    assert p["win"] > 0.99 and p["loser"] < 0.01, p
    assert result.explanations["loser"]["status"] == "held back" and result.quotas["loser"] == 0
    assert json.loads(json.dumps(result.record()))["explanations"]["loser"]["p_above_floor"] == p["loser"]


def _after_a_wait(policy: str, seed: int, periods: int) -> dict[str, int]:
    """Slots won beside a capped winner by an agent starved on three bad rewards and by a settled loser, after
    ``periods`` periods in which the winner alone ran (its cap, 6 runs, each)."""
    alloc = build(policy, seed=seed)
    for r in _alternating(0.5, 200):
        alloc.observe("win", r)
    for r in _alternating(-0.3, 64):
        alloc.observe("loser", r)
    for r in (-1.6, -0.2, -0.6):  # mean -0.8: an unlucky start, three rewards say little
        alloc.observe("starved", r)
    for r in _alternating(0.5, 6 * periods):
        alloc.observe("win", r)
    result = alloc.allocate(["win", "starved", "loser"], max_runs={"win": 6}, total_budget_runs=50, value_floor=0.0)
    assert result.quotas["win"] == 6 and result.explanations["win"]["status"] == "capped"
    return {a: result.explanations[a]["slots_won"] for a in ("starved", "loser")}


@pytest.mark.parametrize("policy", ["glr_thompson", "thompson"])
def test_an_agent_starved_on_little_evidence_is_revisited_as_time_passes_a_settled_loser_is_not(policy):
    """Three bad rewards put an agent's P(mean > floor) below floor_probability. Its test is about itself (its own
    rewards, shrunk towards the floor) and its bar falls with the periods it has gone unrun, so it is revisited
    after a wait; 64 rewards at -0.3 keep the loser held back however long it waits."""
    won = {periods: [_after_a_wait(policy, seed, periods) for seed in range(5)] for periods in (0, 50, 100)}
    starved = {periods: [w["starved"] for w in runs] for periods, runs in won.items()}
    loser = {periods: [w["loser"] for w in runs] for periods, runs in won.items()}
    assert sum(starved[0]) == 0, starved  # just seen losing: held back, not re-explored at once
    assert min(starved[50]) >= 1 and min(starved[100]) >= 1, starved  # long unrun on three rewards: revisited
    assert sum(starved[100]) >= sum(starved[50]), starved
    assert max(starved[100]) <= 10, starved  # a revisit, not the 44 slots the cap leaves over
    assert all(n == 0 for runs in loser.values() for n in runs), loser  # 64 rewards at -0.3: still settled


def _lucky_beside(policy: str, seed: int, winner_cap: int) -> tuple[int, int]:
    """Slots won by an agent on six lucky rewards (mean 0.16, not credibly above the floor) beside an agent
    credibly above it, and the runs held back, with the earner capped at ``winner_cap`` of a budget of 50."""
    alloc = build(policy, seed=seed)
    for r in _alternating(0.1, 2000):
        alloc.observe("win", r)
    for r in _alternating(0.16, 6):
        alloc.observe("lucky", r)
    result = alloc.allocate(["win", "lucky"], max_runs={"win": winner_cap}, total_budget_runs=50, value_floor=0.0)
    assert result.explanations["win"]["p_above_floor"] > 0.99 > result.explanations["lucky"]["p_above_floor"]
    return result.explanations["lucky"]["slots_won"], result.held_back


@pytest.mark.parametrize("policy", ["glr_thompson", "thompson"])
def test_beside_capped_earners_an_uncertain_agent_at_most_doubles_its_evidence_in_a_period(policy):
    """With the earner capped, the slots it leaves over went to the lucky agent one by one (its fantasized
    rewards at a positive mean kept it passing the test): some 40 runs on six rewards. Now an agent not credibly
    above the floor wins at most as many slots in a period as it has rewards, and the rest is held back. Beside an
    earner with room, nothing is left over, and the uncertain agent competes on its draws as before: an agent
    whose recent rewards rise is followed, not held to its old record."""
    capped = [_lucky_beside(policy, seed, winner_cap=6) for seed in range(5)]
    assert all(1 <= won <= 6 and held == 44 - won for won, held in capped), capped
    open_ = [_lucky_beside(policy, seed, winner_cap=50) for seed in range(5)]
    assert all(held == 0 for _, held in open_) and sum(won for won, _ in open_) > 5 * 6, open_
