"""Constraint satisfaction for every policy, by property: any budget, mins, maxes and strategy caps."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_pipeline.allocation import POLICIES, AllocationError, CapitalPlan, make_allocator, make_bounds, violations


@st.composite
def problems(draw):
    n = draw(st.integers(1, 7))
    agents = [f"a{i}" for i in range(n)]
    budget = draw(st.integers(0, 120))
    hi = {}
    lo = {}
    for a in agents:
        if draw(st.booleans()):
            hi[a] = draw(st.integers(0, 40))
        if draw(st.booleans()):
            lo[a] = draw(st.integers(0, min(hi.get(a, 10), 10)))
    # keep the minimums feasible for the budget (an over-full minimum is a separate, explicit error)
    while sum(lo.values()) > budget:
        lo.pop(next(iter(lo)))
    strategies = {a: draw(st.sampled_from(["s0", "s1", "s2"])) for a in agents}
    caps = {}
    for s in ("s0", "s1"):
        if draw(st.booleans()):
            floor = sum(lo.get(a, 0) for a in agents if strategies[a] == s)
            caps[s] = draw(st.integers(floor, floor + 30))
    history = draw(st.lists(st.tuples(st.sampled_from(agents),
                                       st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)), max_size=60))
    return agents, budget, lo, hi, strategies, caps, history


@pytest.mark.parametrize("policy", sorted(POLICIES))
@settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems(), seed=st.integers(0, 2**31))
def test_quotas_obey_every_bound_and_report_the_exact_shortfall(policy, problem, seed):
    agents, budget, lo, hi, strategies, caps, history = problem
    alloc = make_allocator(policy, seed=seed) if POLICIES[policy].randomised else make_allocator(policy)
    alloc.observe_many(history)
    result = alloc.allocate(agents, lo, hi, budget, strategies=strategies, max_runs_per_strategy=caps,
                            capital=CapitalPlan(10_000.0, max_capital_per_strategy={"s0": 1_000.0}))
    bounds = make_bounds(agents, budget, lo, hi, strategies, caps)
    assert violations(bounds, result.quotas, result.shortfall) == []
    assert sum(result.quotas.values()) == budget - result.shortfall
    assert result.shortfall == max(budget - bounds.capacity, 0)
    s0 = sum(usd for a, usd in result.capital.items() if strategies[a] == "s0")
    assert s0 <= 1_000.0 + 1e-9
    assert sum(result.capital.values()) <= 10_000.0 + 1e-6
    assert all(usd == 0 for a, usd in result.capital.items() if result.quotas[a] == 0)


def test_caps_below_the_budget_terminate_with_the_shortfall_the_prototype_looped_on():
    quotas, scores = result = make_allocator("ucb").allocate(["a", "b"], max_runs={"a": 3, "b": 4},
                                                             total_budget_runs=100)
    assert quotas == {"a": 3, "b": 4}
    assert result.shortfall == 93


def test_minimums_are_kept_even_for_the_worst_agent():
    alloc = make_allocator("glr_thompson", seed=1)
    for _ in range(50):
        alloc.observe("good", 1.0)
        alloc.observe("watcher", -1.0)
    quotas, _ = alloc.allocate(["good", "watcher"], min_runs={"watcher": 5}, total_budget_runs=40)
    assert quotas["watcher"] >= 5 and sum(quotas.values()) == 40


@pytest.mark.parametrize("kwargs, message", [
    ({"total_budget_runs": -1}, "total_budget_runs must not be negative"),
    ({"total_budget_runs": 2.5}, "whole number"),
    ({"min_runs": {"a": 5}, "max_runs": {"a": 2}}, "agent 'a': min_runs 5 is above max_runs 2"),
    ({"min_runs": {"a": 60, "b": 60}}, "min_runs sum to 120, above total_budget_runs 100"),
    ({"min_runs": {"zzz": 1}}, "not being allocated"),
    ({"max_runs": {"a": -3}}, "must not be negative"),
])
def test_bad_bounds_name_the_problem(kwargs, message):
    with pytest.raises(AllocationError, match=message):
        make_allocator("ucb").allocate(["a", "b"], **kwargs)


def test_strategy_minimums_above_the_strategy_cap_are_rejected():
    with pytest.raises(AllocationError, match="strategy 'x'"):
        make_allocator("uniform").allocate(["a", "b"], min_runs={"a": 3, "b": 3}, total_budget_runs=10,
                                           strategies={"a": "x", "b": "x"}, max_runs_per_strategy={"x": 5})


def test_duplicate_or_non_string_agents_are_rejected():
    with pytest.raises(AllocationError, match="listed twice"):
        make_allocator("ucb").allocate(["a", "a"])
    with pytest.raises(AllocationError, match="list of names"):
        make_allocator("ucb").allocate("ab")


def test_zero_budget_and_no_agents_are_fine():
    quotas, scores = result = make_allocator("thompson", seed=0).allocate([], total_budget_runs=0)
    assert quotas == {} and scores == {} and result.shortfall == 0
    quotas, _ = make_allocator("thompson", seed=0).allocate(["a"], total_budget_runs=0)
    assert quotas == {"a": 0}
    assert math.isclose(make_allocator("ucb").allocate([], total_budget_runs=7).shortfall, 7)
