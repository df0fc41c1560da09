"""Helpers shared by the trading tests: a sane signal, a fixed clock, an agent run carrying proposals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def seed_signal(**overrides):
    """Exactly the seed's six keys, with sane values the default config approves."""
    base = {"notional_usd": 1_000.0, "expected_edge_bps": 25.0, "spread_bps": 5.0, "slippage_bps": 3.0,
            "data_age_sec": 1.0, "paper": True}
    base.update(overrides)
    return base


def full_signal(**overrides):
    """A proposal as the built-in agents emit it (seed keys plus symbol/side/venue/price/size/...)."""
    base = seed_signal(symbol="BTC-USD", side="buy", venue="sim_a", price=60_000.0, size=1_000.0 / 60_000.0,
                       quote_size=2.0, confidence=0.8, reference_price=60_010.0, profit_pct=0.25)
    base.update(overrides)
    return base


def market_signal(side="buy", venue="sim_a", sell_venue=None, **overrides):
    """``full_signal`` priced at the simulated market right now (the paper broker treats prices as limits)."""
    from agent_pipeline.market import SimulatedMarket

    quotes = {(q.venue, q.symbol): q for q in SimulatedMarket(fault_rate=0.0).quotes(datetime.now(UTC))}
    quote = quotes[(venue, "BTC-USD")]
    priced = {"price": quote.ask if side == "buy" else quote.bid, "reference_price": quote.mid}
    if sell_venue:
        priced.update(sell_venue=sell_venue, sell_price=quotes[(sell_venue, "BTC-USD")].bid)
    return full_signal(side=side, venue=venue, **{**priced, **overrides})


class Clock:
    def __init__(self, now: datetime = NOW):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()
