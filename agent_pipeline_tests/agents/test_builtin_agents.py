"""Built-in agents compute real answers from the quotes and prices they are given."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from agent_pipeline.agents import AgentContext
from agent_pipeline.agents.builtin import CrossVenueArbitrage, Momentum, RegimeWatcher
from agent_pipeline.market import Quote, SimulatedMarket

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def quote(venue, bid, ask, size=2.0, age=0.1, symbol="BTC-USD"):
    return Quote(venue, symbol, bid, ask, size, size, NOW - timedelta(seconds=age), age)


@dataclass
class FixedMarket:
    """A market source whose quotes and history are given: the smallest real implementation of the protocol."""

    book: list
    history: list
    venues: tuple = ("a", "b", "c")
    symbols: tuple = ("BTC-USD",)

    def quotes(self, now):
        return self.book

    def mid_history(self, symbol, now, lookback_sec, step_sec=1):
        return self.history

    def fee_bps(self, venue):
        return 5.0


def test_arbitrage_finds_the_gap_after_fees_and_sizes_it():
    market = FixedMarket([quote("a", 99.0, 100.0, size=3.0), quote("b", 101.0, 102.0, size=1.0),
                          quote("c", 99.5, 100.5)], [])
    out = CrossVenueArbitrage(max_notional_usd=1_000_000).run(AgentContext(NOW, market)).output
    best = out[0]
    expected = (101.0 * (1 - 5e-4) - 100.0 * (1 + 5e-4)) / (100.0 * (1 + 5e-4)) * 100
    assert (best["buy_venue"], best["sell_venue"]) == ("a", "b")
    assert best["profit_pct"] == pytest.approx(expected, rel=1e-4)
    assert best["size"] == 1.0  # the thinner side
    assert best["notional_usd"] == pytest.approx(100.0)
    assert all(o["profit_pct"] > 0 for o in out)
    assert out == sorted(out, key=lambda o: -o["profit_pct"])


def test_arbitrage_ignores_gaps_eaten_by_fees_and_invalid_quotes():
    market = FixedMarket([quote("a", 99.95, 100.0), quote("b", 100.04, 100.1),
                          quote("c", float("nan"), 1.0)], [])
    assert CrossVenueArbitrage().run(AgentContext(NOW, market)).output == []


@pytest.mark.parametrize("drift, side", [(0.0004, "buy"), (-0.0004, "sell")])
def test_momentum_follows_the_trend(drift, side):
    rng = np.random.default_rng(1)
    prices = list(100 * np.exp(np.cumsum(drift + rng.normal(0, 0.0002, 200))))
    market = FixedMarket([quote("a", prices[-1] - 0.01, prices[-1] + 0.01)], prices)
    item = Momentum().run(AgentContext(NOW, market)).output[0]
    assert item["side"] == side and item["confidence"] > 0.5 and item["expected_edge_bps"] > 0
    assert item["profit_pct"] == pytest.approx(item["expected_edge_bps"] / 100)
    for key in ("notional_usd", "expected_edge_bps", "spread_bps", "slippage_bps", "data_age_sec", "paper"):
        assert key in item


def test_regime_watcher_classifies_and_never_proposes_trades():
    calm = list(100 * np.exp(np.cumsum(np.random.default_rng(2).normal(0, 0.0001, 120))))
    market = FixedMarket([quote("a", 99.99, 100.01), quote("b", 99.98, 100.02)], calm)
    out = RegimeWatcher().run(AgentContext(NOW, market)).output
    assert out[0]["regime"] == "calm" and "profit_pct" not in out[0] and "notional_usd" not in out[0]
    dislocated = FixedMarket([quote("a", 99.99, 100.01), quote("b", 100.9, 101.0)], calm)
    assert RegimeWatcher().run(AgentContext(NOW, dislocated)).output[0]["regime"] == "dislocated"


def test_arbitrage_finds_opportunities_in_the_simulated_market():
    market = SimulatedMarket(seed=7, fault_rate=0, dislocation_prob=0.3)
    agent = CrossVenueArbitrage()
    hits = sum(bool(agent.run(AgentContext(NOW + timedelta(minutes=i), market)).output) for i in range(60))
    assert 0 < hits < 60


def test_builtin_identity_is_the_first_three_fields_and_names_the_registered_ref():
    from dataclasses import fields

    from agent_pipeline.agents.builtin import BUILTIN_REFS

    assert [(a.name, a.strategy, a.kind) for a in (CrossVenueArbitrage(), Momentum(), RegimeWatcher())] == [
        ("cross_venue_arb", "cross_venue_arb", "execution-sensitive"), ("momentum", "momentum", "signal"),
        ("regime_watcher", "macro_regime", "watcher")]
    for cls in (CrossVenueArbitrage, Momentum, RegimeWatcher):
        assert [f.name for f in fields(cls)][:3] == ["name", "strategy", "kind"]
        assert BUILTIN_REFS[cls.name] == f"agent_pipeline.agents.builtin:{cls.__name__}"
    assert Momentum("fast_momentum", fast_steps=6) == Momentum(name="fast_momentum", fast_steps=6) != Momentum()
