"""The paper broker: fills approved orders against the batch's market snapshot, with slippage and fees.

Only ``agent_pipeline.trading.execution`` may import this module (a test enforces it), and ``submit`` refuses any
order that does not come with the gate's approving decision for that very order key.

Fill model (``agent_pipeline.trading.market_facts``, the same functions the gate measured with): a buy pays the
venue's ask, a sell receives its bid, each moved against the order by ``base_slippage_bps + impact_bps_per_quote
x size / touch size``; the fee is the venue's fee in bps of the filled notional (``market.fee_bps(venue)`` when
the source knows it, else ``default_fee_bps``). Quotes are read once per batch before the execution layer takes
any lock (``prefetch``), so a slow source never holds the store, and the gate measures the very same snapshot.
Each fill takes its size from the touch for the rest of the batch. A paired arbitrage order (``sell_venue`` set)
fills two legs: buy on ``venue``, sell the same size on ``sell_venue`` (limit ``sell_price``).

The broker trusts the gate no more than the gate trusts the agent. It refuses the whole order (nothing is filled
partly) when a leg's quote is missing, crossed, empty, non-finite, future-dated or older than
``max_quote_age_sec``; when a leg would fill worse than its limit by more than ``max_fill_deviation_bps``; and when
a leg's filled notional (size x fill price) would exceed the checked notional by more than
``market_facts.FILL_NOTIONAL_TOLERANCE`` (1e-9, float rounding).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from agent_pipeline.market.base import MarketSource
from agent_pipeline.trading.config import ExecutionConfig
from agent_pipeline.trading.market_facts import MarketSnapshot, fill_price, fill_problem, impact_slippage_bps, leg_facts


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
                 clock: Callable[[], datetime] | None = None, *, max_quote_age_sec: float = 30.0):
        self.market = market
        self.cfg = cfg or ExecutionConfig()
        self._clock = clock or (lambda: datetime.now(UTC))
        self.max_quote_age_sec = max_quote_age_sec
        self._snapshot: MarketSnapshot | None = None

    def prefetch(self) -> MarketSnapshot:
        """Read the market once for a batch, before any lock is taken (a network source may be slow)."""
        self._snapshot = MarketSnapshot.take(self.market, self._clock, self.cfg)
        return self._snapshot

    def release(self) -> None:
        self._snapshot = None

    def submit(self, order: OrderIntent, decision) -> BrokerResult:
        if not getattr(decision, "ok", False) or decision.inputs.get("order_key") != order.order_key:
            raise PermissionError(f"order {order.order_key}: the broker takes only orders the gate approved")
        legs = [(order.side, order.venue, order.price)]
        if order.sell_venue:
            if order.side != "buy" or order.sell_price is None:
                return BrokerResult("rejected", reject_reason="a paired order buys on venue and sells on sell_venue "
                                                              "at sell_price")
            legs.append(("sell", order.sell_venue, order.sell_price))
        if not (math.isfinite(order.size) and order.size > 0 and math.isfinite(order.notional_usd)
                and order.notional_usd > 0):
            return BrokerResult("rejected", reject_reason=f"unusable size {order.size!r} or notional "
                                                          f"{order.notional_usd!r}")
        snapshot = self._snapshot if self._snapshot is not None else MarketSnapshot.take(self.market, self._clock,
                                                                                         self.cfg)
        now = self._clock()
        fills = []
        for index, (side, venue, limit) in enumerate(legs):
            leg, problem = leg_facts(snapshot, venue, order.symbol, side, now)
            if problem is not None:
                return BrokerResult("rejected", reject_reason=f"{problem.code.value}: {problem.message}")
            slip = impact_slippage_bps(order.size, leg.touch_size, self.cfg)
            price = fill_price(leg.touch_price, side, slip)
            fee = price * order.size * leg.fee_bps / 10_000.0
            if not all(math.isfinite(x) for x in (price, fee, slip)) or price <= 0:
                return BrokerResult("rejected", reject_reason=f"unusable fill price on {venue}")
            sized = replace(leg, size=order.size, fill_price=price, slippage_bps=slip)
            refusal = fill_problem(sized, notional=order.notional_usd, limit=limit, now=now,
                                   max_age_sec=self.max_quote_age_sec,
                                   max_deviation_bps=self.cfg.max_fill_deviation_bps)
            if refusal is not None:
                return BrokerResult("rejected", reject_reason=refusal)
            fills.append(Fill(index, order.symbol, venue, side, order.size, price, fee, slip))
        for fill in fills:
            snapshot.take_depth(fill.venue, fill.symbol, fill.side, fill.size)
        return BrokerResult("filled", tuple(fills))
