"""The paper broker: fills approved orders against the market source, with slippage and fees.

Only ``agent_pipeline.trading.execution`` may import this module (a test enforces it), and ``submit`` refuses any
order that does not come with the gate's approving decision for that very order key.

Fill model: a buy pays the venue's ask, a sell receives its bid, each moved against the order by
``base_slippage_bps + impact_bps_per_quote * size / quoted size``; the fee is the venue's fee in bps of the filled
notional (``market.fee_bps(venue)`` when the source knows it, else ``default_fee_bps``). Quotes are read once
per batch before the execution layer takes any lock (``prefetch``), so a slow source never holds the store. A
paired arbitrage order (``sell_venue`` set) fills two legs: buy on ``venue``, sell the same size on
``sell_venue`` (at ``sell_price``). The order's prices are limits: a leg that would fill worse than its price by
more than ``max_fill_deviation_bps`` (a stale or wrong price from the agent) rejects the whole order, as does a
missing or unusable quote; nothing is filled partly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from agent_pipeline.market.base import MarketSource, Quote
from agent_pipeline.trading.config import ExecutionConfig


@dataclass(frozen=True)
class OrderIntent:
    order_key: str
    agent: str
    strategy: str
    symbol: str
    side: str
    venue: str
    size: float
    price: float
    notional_usd: float
    sell_venue: str | None = None
    sell_price: float | None = None
    capital_usd: float | None = None
    paper: bool = True


@dataclass(frozen=True)
class Fill:
    leg: int
    symbol: str
    venue: str
    side: str
    size: float
    price: float
    fee_usd: float
    slippage_bps: float


@dataclass(frozen=True)
class BrokerResult:
    status: str  # "filled" | "rejected"
    fills: tuple[Fill, ...] = ()
    reject_reason: str | None = None


class PaperBroker:
    def __init__(self, market: MarketSource, cfg: ExecutionConfig | None = None,
                 clock: Callable[[], datetime] | None = None):
        self.market = market
        self.cfg = cfg or ExecutionConfig()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._quotes: list[Quote] | None = None
        self._quote_error: str | None = None

    def prefetch(self) -> None:
        """Read the market once for a batch, before any lock is taken (a network source may be slow)."""
        try:
            self._quotes, self._quote_error = list(self.market.quotes(self._clock())), None
        except Exception as exc:  # outage: the batch's orders are rejected, nothing fills
            self._quotes, self._quote_error = None, f"no market data: {type(exc).__name__}: {exc}"

    def release(self) -> None:
        self._quotes, self._quote_error = None, None

    def submit(self, order: OrderIntent, decision) -> BrokerResult:
        if not getattr(decision, "ok", False) or decision.inputs.get("order_key") != order.order_key:
            raise PermissionError(f"order {order.order_key}: the broker takes only orders the gate approved")
        legs = [(order.side, order.venue, order.price)]
        if order.sell_venue:
            if order.side != "buy" or order.sell_price is None:
                return BrokerResult("rejected", reject_reason="a paired order buys on venue and sells on sell_venue "
                                                              "at sell_price")
            legs.append(("sell", order.sell_venue, order.sell_price))
        if self._quote_error is not None:
            return BrokerResult("rejected", reject_reason=self._quote_error)
        if self._quotes is not None:
            quotes = self._quotes
        else:
            try:
                quotes = self.market.quotes(self._clock())
            except Exception as exc:  # outage: nothing fills
                return BrokerResult("rejected", reject_reason=f"no market data: {type(exc).__name__}: {exc}")
        fills = []
        tolerance = self.cfg.max_fill_deviation_bps / 10_000.0
        for leg, (side, venue, limit) in enumerate(legs):
            quote = _find(quotes, venue, order.symbol)
            if quote is None or not quote.valid:
                return BrokerResult("rejected", reject_reason=f"no valid quote for {order.symbol} on {venue}")
            touch, quoted = (quote.ask, quote.ask_size) if side == "buy" else (quote.bid, quote.bid_size)
            slip = self.cfg.base_slippage_bps + self.cfg.impact_bps_per_quote * order.size / max(quoted, 1e-12)
            price = touch * (1 + slip / 10_000.0) if side == "buy" else touch * (1 - slip / 10_000.0)
            fee_bps = self._fee_bps(venue)
            fee = price * order.size * fee_bps / 10_000.0
            if not all(math.isfinite(x) for x in (price, fee, slip)) or price <= 0:
                return BrokerResult("rejected", reject_reason=f"unusable fill price on {venue}")
            worse = price > limit * (1 + tolerance) if side == "buy" else price < limit * (1 - tolerance)
            if worse:
                return BrokerResult("rejected", reject_reason=f"{side} on {venue} would fill at {price:.6g}, beyond "
                                    f"the order's price {limit:.6g} by more than {self.cfg.max_fill_deviation_bps:g} bps")
            fills.append(Fill(leg, order.symbol, venue, side, order.size, price, fee, slip))
        return BrokerResult("filled", tuple(fills))

    def _fee_bps(self, venue: str) -> float:
        fee = getattr(self.market, "fee_bps", None)
        if callable(fee):
            try:
                value = float(fee(venue))
                if math.isfinite(value) and value >= 0:
                    return value
            except Exception:
                pass
        return self.cfg.default_fee_bps


def _find(quotes: list[Quote], venue: str, symbol: str) -> Quote | None:
    for q in quotes:
        if q.venue == venue and q.symbol == symbol:
            return q
    return None
