"""Helpers shared by the trading tests: a sane signal, a fixed clock, an agent run carrying proposals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def prototype_signal(**overrides):
    """Exactly the prototype's six keys, with sane values the default config approves."""
    base = {"notional_usd": 1_000.0, "expected_edge_bps": 25.0, "spread_bps": 5.0, "slippage_bps": 3.0,
            "data_age_sec": 1.0, "paper": True}
    base.update(overrides)
    return base


def full_signal(**overrides):
    """A proposal as the built-in agents emit it (the prototype's keys plus symbol/side/venue/price/size/...)."""
    base = prototype_signal(symbol="BTC-USD", side="buy", venue="sim_a", price=60_000.0, size=1_000.0 / 60_000.0,
                       quote_size=2.0, confidence=0.8, reference_price=60_010.0, profit_pct=0.25)
    base.update(overrides)
    return base


def market_signal(side="buy", venue="sim_a", sell_venue=None, **overrides):
    """``full_signal`` priced at the simulated market right now (the paper broker treats prices as limits)."""
    from agent_pipeline.market import SimulatedMarket

    quotes = {(q.venue, q.symbol): q for q in SimulatedMarket(fault_rate=0.0, stale_prob=0.0).quotes(datetime.now(UTC))}
    quote = quotes[(venue, "BTC-USD")]
    priced = {"price": quote.ask if side == "buy" else quote.bid, "reference_price": quote.mid}
    if sell_venue:
        priced.update(sell_venue=sell_venue, sell_price=quotes[(sell_venue, "BTC-USD")].bid)
    signal = full_signal(side=side, venue=venue, **{**priced, **overrides})
    if "size" not in overrides:  # an honest agent's size agrees with its notional at its price
        signal["size"] = signal["notional_usd"] / signal["price"]
    return signal


class Always(str):
    """Equal to everything, hashing like a str: passes any membership test."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = str.__hash__


class Clock:
    def __init__(self, now: datetime = NOW):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def book(venue="sim_a", symbol="BTC-USD", bid=50_000.0, ask=50_010.0, bid_size=2.0, ask_size=2.0, age=0.1):
    """One venue's top of book for ``BookMarket``: prices, sizes and how old the quote is when fetched."""
    return {"venue": venue, "symbol": symbol, "bid": bid, "ask": ask, "bid_size": bid_size, "ask_size": ask_size,
            "age": age}


class BookMarket:
    """A market source that quotes exactly the books it is given (the execution layer's market, under test).

    Each book is a ``book(...)`` dict (stamped ``age`` seconds before the fetch) or a ready ``Quote`` (kept as is,
    e.g. future-dated or with a broken timestamp). ``fail`` makes every fetch raise, as an outage does.
    """

    def __init__(self, books, *, fees=None, fail=False):
        self.books = list(books)
        self.fees = dict(fees or {})
        self.fail = fail
        self.symbols = tuple(sorted({b["symbol"] if isinstance(b, dict) else b.symbol for b in self.books}))
        self.venues = tuple(sorted({b["venue"] if isinstance(b, dict) else b.venue for b in self.books}))
        self.fetches = 0

    def quotes(self, now):
        from datetime import timedelta

        from agent_pipeline.market.base import MarketDataError, Quote

        self.fetches += 1
        if self.fail:
            raise MarketDataError("venue outage (test)")
        out = []
        for b in self.books:
            if not isinstance(b, dict):
                out.append(b)
                continue
            out.append(Quote(venue=b["venue"], symbol=b["symbol"], bid=b["bid"], ask=b["ask"], bid_size=b["bid_size"],
                             ask_size=b["ask_size"], ts=now - timedelta(seconds=b["age"]), data_age_sec=b["age"]))
        return out

    def mid_history(self, symbol, now, lookback_sec, step_sec=1):
        return []

    def fee_bps(self, venue):
        return self.fees.get(venue, 5.0)


def proposal(venue="sim_a", side="buy", price=None, notional=2_000.0, books=None, **overrides):
    """An honest agent's proposal against ``books``: limit at the touch, size agreeing with the notional."""
    quote = next(b for b in (books or [book()]) if isinstance(b, dict) and b["venue"] == venue)
    limit = price if price is not None else (quote["ask"] if side == "buy" else quote["bid"])
    item = {"symbol": quote["symbol"], "side": side, "venue": venue, "price": limit, "notional_usd": notional,
            "size": float(notional) / limit, "expected_edge_bps": 25.0, "spread_bps": 5.0, "slippage_bps": 3.0,
            "data_age_sec": 0.1, "confidence": 0.8, "reference_price": (quote["bid"] + quote["ask"]) / 2,
            "quote_size": quote["ask_size"] if side == "buy" else quote["bid_size"], "paper": True}
    item.update(overrides)
    return item
