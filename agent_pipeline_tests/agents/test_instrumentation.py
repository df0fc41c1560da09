"""Instrumentation turns every run into one event: success priced with the reward, failures with a message."""

import math
import time
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from agent_pipeline.agents import AgentContext, AgentResult, AgentSpec, build_agent, run_instrumented
from agent_pipeline.agents.registry import FunctionAgent, LoadedAgent
from agent_pipeline.market import SimulatedMarket
from agent_pipeline.reward import RewardConfig, capital_weighted_reward

CTX = AgentContext(now=datetime(2026, 3, 2, 12, tzinfo=UTC), market=SimulatedMarket(fault_rate=0), run_id="r1")


def agent_returning(fn, *, strategy="cross_venue_arb", timeout=5.0) -> LoadedAgent:
    spec = AgentSpec(name="user", ref="tests:fn", timeout_sec=timeout)
    return LoadedAgent(spec, FunctionAgent("user", "signal", strategy, fn))


def test_success_event_carries_latency_cost_output_and_the_prototype_reward():
    def fn(ctx):
        time.sleep(0.02)
        return AgentResult([{"profit_pct": 0.5, "data_age_sec": 1.5}], cost_usd=0.003)

    event = run_instrumented(agent_returning(fn), CTX, RewardConfig())
    assert event.ok and event.error is None and event.run_id == "r1"
    assert event.latency_seconds >= 0.02
    assert event.cost_usd == 0.003 and event.data_age_sec == 1.5
    assert event.reward == pytest.approx(
        capital_weighted_reward("user", [{"profit_pct": 0.5}], capital_usd=25_000, max_loss_usd=300,
                                run_cost_usd=0.003))  # [reward] charge_run_cost is on by default
    assert (event.capital_usd, event.max_loss_usd) == (25_000, 300)
    assert event.started_at.tzinfo is not None


def raises(ctx):
    raise ConnectionError("exchange unreachable")


@pytest.mark.parametrize("fn, error_type, message", [
    (raises, "ConnectionError", "exchange unreachable"),
    (lambda ctx: {"profit_pct": 1}, "AgentOutputError", "must be a list of dicts"),
    (lambda ctx: [1, 2], "AgentOutputError", r"output\[0\] must be a dict"),
    (lambda ctx: [{"profit_pct": float("nan")}], "AgentOutputError", "must be finite"),
    (lambda ctx: [{"profit_pct": "lots"}], "AgentOutputError", "must be a number"),
    (lambda ctx: AgentResult([{"profit_pct": 1}], cost_usd=-1), "AgentOutputError", "cost_usd"),
    (lambda ctx: AgentResult([{"profit_pct": 1}], cost_usd=float("inf")), "AgentOutputError", "cost_usd"),
    (lambda ctx: [{"x": object()}], None, None),  # not JSON-native, stored as its string form
])
def test_bad_runs_become_error_events_never_silent_zeros(fn, error_type, message):
    event = run_instrumented(agent_returning(fn), CTX, RewardConfig())
    if error_type is None:
        assert event.ok
        return
    assert not event.ok and event.reward is None and event.output is None
    assert event.error_type == error_type
    assert message in event.error or __import__("re").search(message, event.error)
    assert math.isfinite(event.latency_seconds)


def test_a_hanging_agent_times_out_with_a_recorded_error():
    event = run_instrumented(agent_returning(lambda ctx: time.sleep(5), timeout=0.2), CTX, RewardConfig())
    assert event.error_type == "AgentTimeout" and "0.2 s" in event.error
    assert 0.2 <= event.latency_seconds < 2


def test_builtin_agents_produce_scored_events():
    for name in ("cross_venue_arb", "momentum", "regime_watcher"):
        from agent_pipeline.agents.builtin import BUILTIN_REFS

        loaded = build_agent(AgentSpec(name=name, ref=BUILTIN_REFS[name]))
        event = run_instrumented(loaded, CTX, RewardConfig())
        assert event.ok, event.error
        assert math.isfinite(event.reward)
        assert isinstance(event.output, list)


# -- hidden case 12 of issue 9: one meaning of "a number" in instrumentation too ---------------------------------
@pytest.mark.parametrize("value", [np.int64(1_000), np.float32(1_000.0), Decimal("1000"), Fraction(1_000, 1)])
def test_numbers_the_gate_accepts_are_numbers_here_too_and_are_stored_as_numbers(value):
    event = run_instrumented(agent_returning(lambda ctx: [{"profit_pct": 0.5, "notional_usd": value,
                                                           "data_age_sec": value}]), CTX, RewardConfig())
    assert event.ok, event.error
    stored = event.output[0]["notional_usd"]
    assert type(stored) in (int, float) and stored == 1_000
    assert event.data_age_sec == 1_000.0


@pytest.mark.parametrize("value", [np.bool_(True), True, Decimal("NaN"), np.float64("nan"), Decimal("sNaN"),
                                   10 ** 400, "1000"])
def test_what_the_gate_refuses_as_a_number_is_an_error_event_here(value):
    event = run_instrumented(agent_returning(lambda ctx: [{"profit_pct": 0.5, "notional_usd": value}]), CTX,
                             RewardConfig())
    assert not event.ok and "notional_usd" in event.error


@pytest.mark.parametrize("cost", [np.float64(0.25), Decimal("0.25"), np.int64(0)])
def test_costs_in_any_real_number_type_are_recorded_as_floats(cost):
    event = run_instrumented(agent_returning(lambda ctx: AgentResult([{"profit_pct": 0.5}], cost_usd=cost)), CTX,
                             RewardConfig())
    assert event.ok and type(event.cost_usd) is float and event.cost_usd == float(cost)
