"""Market facts measured from the market source's own quotes at decision time: what the gate decides on.

An agent's output says what it believes about the market (spread, slippage, data age, quoted size, a reference
price); none of that is trusted. The execution layer takes one ``MarketSnapshot`` per batch (the very quotes the
paper broker fills against) and, for each order, ``measure_order`` derives from the quote of every leg:

- bid, ask, mid and spread from the book; the collar's reference price is the mid;
- the data age at decision time, ``now - ts``, or the source's own ``data_age_sec`` carried forward from the
  fetch, whichever is older; a ``ts`` after ``now`` is future-dated;
- the size quoted at the touch on the side the order takes, less what earlier orders of the batch already took;
- the size: from the checked notional and the price the broker fills at (touch moved by the broker's impact
  model, ``impact_slippage_bps``), the same size for every leg of a paired order, so that for every leg
  ``size x fill price <= notional x (1 + FILL_NOTIONAL_TOLERANCE)``;
- the expected fill price and slippage at that size, and for a paired order the edge after fees.

Crossed, empty, non-finite, zero or negative books and missing quotes are ``problem``\\ s with a reason code: the
gate denies them and the broker refuses them too. The same functions serve both, so the gate's measurement and
the broker's fill cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from agent_pipeline.numbers import finite_number
from agent_pipeline.trading.config import ExecutionConfig
from agent_pipeline.trading.reasons import Reason

# Filled notional (size x fill price, every leg) never exceeds the checked notional by more than this relative
# amount: float rounding only. The sizing solves for it exactly; the broker refuses a fill beyond it.
FILL_NOTIONAL_TOLERANCE = 1e-9
SIDES = ("buy", "sell")


def impact_slippage_bps(size: float, touch_size: float, cfg: ExecutionConfig) -> float:
    """The paper broker's slippage model: ``base + impact x size / touch size``, in bps against the order."""
    return cfg.base_slippage_bps + cfg.impact_bps_per_quote * size / touch_size


def fill_price(touch: float, side: str, slippage_bps: float) -> float:
    """The touch moved against the order by ``slippage_bps``: a buy pays more, a sell receives less."""
    move = slippage_bps / 10_000.0
    return touch * (1.0 + move) if side == "buy" else touch * (1.0 - move)


def venue_fee_bps(market: Any, venue: str, default: float) -> float:
    """The venue's fee when the market source knows it (a finite number >= 0), else ``default``."""
    fee = getattr(market, "fee_bps", None)
    if callable(fee):
        try:
            value = finite_number(fee(venue))
        except Exception:  # an unknown venue or a broken source: the configured default
            value = None
        if value is not None and value >= 0:
            return value
    return default


def _describe(exc: BaseException) -> str:
    """``Type: message`` of a market source's exception; rendering it never raises."""
    try:
        text = str.__str__(str(exc))[:300]
    except Exception:  # noqa: BLE001 - only for the message
        text = "<unprintable>"
    return f"{type(exc).__qualname__}: {text}"


@dataclass(frozen=True)
class Problem:
    """Why a market cannot be traded: a reason code, a message with the numbers, the field it concerns."""

    code: Reason
    message: str
    field: str | None = None


class MarketSnapshot:
    """The quotes of one batch, read once before any lock is taken, and the depth the batch has taken since.

    ``take`` never raises (an interrupt aside): an outage is kept as ``error`` (``MARKET_DATA_MISSING``), and a
    source that answers with something the snapshot cannot even index (quotes whose venue or symbol cannot be
    read, a clock or fee table that raises) as ``MARKET_UNREADABLE``; every order of the batch is refused with it.
    A quote whose venue or symbol is not text is left out: no order can be looked up against it.
    """

    def __init__(self, quotes: Iterable[Any], fetched_at: datetime, *, error: str | None = None,
                 error_code: Reason = Reason.MARKET_DATA_MISSING, fees: Mapping[str, float] | None = None,
                 default_fee_bps: float = 0.0):
        self.fetched_at = fetched_at
        self.error = error
        self.error_code = error_code
        self._quotes: dict[tuple[str, str], Any] = {}
        self._duplicates: set[tuple[str, str]] = set()
        for quote in quotes:
            venue, symbol = getattr(quote, "venue", None), getattr(quote, "symbol", None)
            if not isinstance(venue, str) or not isinstance(symbol, str):
                continue
            key = (str.__str__(venue), str.__str__(symbol))
            if key in self._quotes:  # two books for one venue and symbol: which one is real is unknown
                self._duplicates.add(key)
            self._quotes[key] = quote
        self._fees = dict(fees or {})
        self._default_fee = default_fee_bps
        self._taken: dict[tuple[str, str, str], float] = {}

    @classmethod
    def take(cls, market: Any, clock: Callable[[], datetime], cfg: ExecutionConfig) -> MarketSnapshot:
        """The batch's one read of the market; whatever goes wrong becomes the snapshot's ``error``."""
        try:
            fetched_at = clock()
        except Exception:  # noqa: BLE001 - an unusable clock is an unreadable market, the decision time is now
            fetched_at = datetime.now(UTC)
            return cls([], fetched_at, error="the decision clock raised", error_code=Reason.MARKET_UNREADABLE)
        try:
            quotes = list(market.quotes(fetched_at))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - outage: the batch's orders are refused, nothing fills
            return cls([], fetched_at, error=f"no market data: {_describe(exc)}")
        try:
            venues = {getattr(q, "venue", None) for q in quotes}
            fees = {v: venue_fee_bps(market, v, cfg.default_fee_bps) for v in venues if isinstance(v, str)}
            return cls(quotes, fetched_at, fees=fees, default_fee_bps=cfg.default_fee_bps)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - the answer cannot even be indexed: fail closed
            return cls([], fetched_at, error=f"the market source's quotes cannot be read: {_describe(exc)}",
                       error_code=Reason.MARKET_UNREADABLE)

    def quote(self, venue: str, symbol: str) -> Any | None:
        return self._quotes.get((venue, symbol))

    def ambiguous(self, venue: str, symbol: str) -> bool:
        return (venue, symbol) in self._duplicates

    def fee_bps(self, venue: str) -> float:
        return self._fees.get(venue, self._default_fee)

    def taken(self, venue: str, symbol: str, side: str) -> float:
        return self._taken.get((venue, symbol, side), 0.0)

    def take_depth(self, venue: str, symbol: str, side: str, size: float) -> None:
        """Record a fill: later orders of the batch see that much less at this touch."""
        key = (venue, symbol, side)
        self._taken[key] = self._taken.get(key, 0.0) + size


@dataclass(frozen=True)
class LegFacts:
    """One leg of an order against its quote. ``size``, ``fill_price`` and ``slippage_bps`` once sized."""

    venue: str
    symbol: str
    side: str
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    ts: datetime
    source_age_sec: float
    fetched_at: datetime
    touch_price: float
    touch_size: float          # quoted at the touch on this side, less what the batch already took
    fee_bps: float
    size: float | None = None
    fill_price: float | None = None
    slippage_bps: float | None = None

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0

    @property
    def spread_bps(self) -> float:
        return (self.ask - self.bid) / self.mid * 10_000.0

    def age_at(self, now: datetime) -> float:
        """Seconds since the venue quoted: by the timestamp, or by the source's own age, whichever is older."""
        by_ts = (now - self.ts).total_seconds()
        by_source = self.source_age_sec + (now - self.fetched_at).total_seconds()
        return max(by_ts, by_source)

    def as_record(self) -> dict[str, Any]:
        return {"venue": self.venue, "symbol": self.symbol, "side": self.side, "bid": self.bid, "ask": self.ask,
                "bid_size": self.bid_size, "ask_size": self.ask_size, "ts": self.ts.isoformat(),
                "source_age_sec": self.source_age_sec, "mid": self.mid, "spread_bps": self.spread_bps,
                "touch_price": self.touch_price, "touch_size": self.touch_size, "fee_bps": self.fee_bps,
                "size": self.size, "fill_price": self.fill_price, "slippage_bps": self.slippage_bps,
                "fill_notional_usd": None if self.size is None else self.size * self.fill_price}


@dataclass(frozen=True)
class MarketFacts:
    """What the market showed for one order at ``measured_at``; ``problem`` set means it cannot be traded."""

    measured_at: datetime
    fetched_at: datetime
    notional_usd: float | None
    legs: tuple[LegFacts, ...] = ()
    size: float | None = None
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and self.size is not None and bool(self.legs)

    def age_at(self, now: datetime) -> float:
        return max(leg.age_at(now) for leg in self.legs)

    @property
    def snapshot_age_sec(self) -> float:
        """The quotes' age when the snapshot was read (what an honest agent could have seen at best)."""
        return self.age_at(self.fetched_at)

    @property
    def spread_bps(self) -> float:
        return max(leg.spread_bps for leg in self.legs)

    @property
    def slippage_bps(self) -> float:
        return max(leg.slippage_bps for leg in self.legs)

    @property
    def quote_size(self) -> float:
        return min(leg.touch_size for leg in self.legs)

    @property
    def reference_price(self) -> float:
        """The price collar's reference: the mid of the first leg's book."""
        return self.legs[0].mid

    @property
    def edge_bps(self) -> float | None:
        """A paired order's edge after both fees at the expected fill prices; None for a single leg."""
        if len(self.legs) != 2:
            return None
        buy, sell = self.legs
        cost = buy.fill_price * (1 + buy.fee_bps / 10_000.0)
        proceeds = sell.fill_price * (1 - sell.fee_bps / 10_000.0)
        return (proceeds - cost) / cost * 10_000.0

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"measured_at": self.measured_at.isoformat(),
                                  "fetched_at": self.fetched_at.isoformat(), "notional_usd": self.notional_usd,
                                  "size": self.size, "legs": [leg.as_record() for leg in self.legs]}
        if self.legs:
            record["age_sec"] = self.age_at(self.measured_at)
        if self.ok:
            record.update(spread_bps=self.spread_bps, slippage_bps=self.slippage_bps, quote_size=self.quote_size,
                          reference_price=self.reference_price, edge_bps=self.edge_bps)
        if self.problem is not None:
            record["problem"] = {"code": self.problem.code.value, "message": self.problem.message}
        return record


def _usable_quote(quote: Any, side: str, now: datetime, taken: float) -> tuple[dict[str, Any] | None,
                                                                              Problem | None]:
    """The quote's numbers if it can be traded on ``side`` at ``now``, else the problem (fail closed)."""
    where = f"{getattr(quote, 'symbol', '?')} on {getattr(quote, 'venue', '?')}"
    values = {}
    for name in ("bid", "ask", "bid_size", "ask_size", "data_age_sec"):
        number = finite_number(getattr(quote, name, None))
        if number is None:
            return None, Problem(Reason.QUOTE_INVALID, f"quote for {where}: {name} is "
                                 f"{getattr(quote, name, None)!r:.40}, not a finite number", name)
        values[name] = number
    if values["bid"] <= 0 or values["ask"] <= 0:
        return None, Problem(Reason.QUOTE_INVALID, f"quote for {where}: bid {values['bid']:g} / ask "
                             f"{values['ask']:g} must be positive", "bid")
    if values["bid"] > values["ask"]:
        return None, Problem(Reason.CROSSED_QUOTE, f"quote for {where} is crossed: bid {values['bid']:.8g} > ask "
                             f"{values['ask']:.8g}", "bid")
    if values["bid_size"] < 0 or values["ask_size"] < 0:
        return None, Problem(Reason.QUOTE_INVALID, f"quote for {where}: negative size (bid {values['bid_size']:g}, "
                             f"ask {values['ask_size']:g})", "quote_size")
    if values["bid_size"] == 0 or values["ask_size"] == 0:
        return None, Problem(Reason.EMPTY_BOOK, f"book for {where} is empty on a side (bid size "
                             f"{values['bid_size']:g}, ask size {values['ask_size']:g})", "quote_size")
    touch_size = (values["ask_size"] if side == "buy" else values["bid_size"]) - taken
    if not touch_size > 0:
        return None, Problem(Reason.EMPTY_BOOK, f"book for {where}: earlier orders of this batch already took "
                             f"the {side} touch ({taken:.8g} taken)", "quote_size")
    values["touch_size"] = touch_size
    ts = getattr(quote, "ts", None)
    if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() is None:
        return None, Problem(Reason.QUOTE_INVALID, f"quote for {where} has no timezone-aware timestamp ({ts!r:.40})",
                             "data_age_sec")
    if ts > now or values["data_age_sec"] < 0:
        return None, Problem(Reason.FUTURE_DATED_DATA, f"quote for {where} is stamped {ts.isoformat()}, after the "
                             f"decision time {now.isoformat()} (source age {values['data_age_sec']:g} s)",
                             "data_age_sec")
    values["ts"] = ts
    return values, None


def leg_facts(snapshot: MarketSnapshot, venue: Any, symbol: Any, side: Any, now: datetime
              ) -> tuple[LegFacts | None, Problem | None]:
    """One leg measured from the snapshot, or why it cannot be."""
    if snapshot.error is not None:
        return None, Problem(snapshot.error_code, snapshot.error)
    if not isinstance(venue, str) or not isinstance(symbol, str) or side not in SIDES:
        return None, Problem(Reason.MARKET_DATA_MISSING, f"cannot look up a quote for venue {venue!r:.40}, symbol "
                             f"{symbol!r:.40}, side {side!r:.20}", "venue")
    quote = snapshot.quote(venue, symbol)
    if quote is None:
        return None, Problem(Reason.MARKET_DATA_MISSING, f"the market source has no quote for {symbol} on {venue}",
                             "venue")
    if snapshot.ambiguous(venue, symbol):
        return None, Problem(Reason.QUOTE_INVALID, f"the market source gave more than one quote for {symbol} on "
                             f"{venue}", "venue")
    values, problem = _usable_quote(quote, side, now, snapshot.taken(venue, symbol, side))
    if problem is not None:
        return None, problem
    return LegFacts(venue=venue, symbol=symbol, side=side, bid=values["bid"], ask=values["ask"],
                    bid_size=values["bid_size"], ask_size=values["ask_size"], ts=values["ts"],
                    source_age_sec=values["data_age_sec"], fetched_at=snapshot.fetched_at,
                    touch_price=values["ask"] if side == "buy" else values["bid"], touch_size=values["touch_size"],
                    fee_bps=snapshot.fee_bps(venue)), None


def size_for_notional(notional: float, legs: Iterable[LegFacts], cfg: ExecutionConfig) -> float:
    """The largest size whose fill on every leg stays within ``notional`` under the broker's impact model.

    A buy fills at ``ask x (1 + (base + k x size / depth) / 10^4)``, so ``size x fill = notional`` is a quadratic
    in size (solved in its cancellation-free form); a sell fills below its bid, so ``notional / bid`` bounds it.
    """
    size = math.inf
    for leg in legs:
        if leg.side == "buy":
            linear = leg.touch_price * (1.0 + cfg.base_slippage_bps / 10_000.0)
            quadratic = leg.touch_price * cfg.impact_bps_per_quote / (leg.touch_size * 10_000.0)
            leg_size = 2.0 * notional / (linear + math.sqrt(linear * linear + 4.0 * quadratic * notional))
        else:
            leg_size = notional / leg.touch_price
        size = min(size, leg_size)
    for leg in legs:  # float rounding: never let a leg's fill notional end above the notional
        filled = size * fill_price(leg.touch_price, leg.side, impact_slippage_bps(size, leg.touch_size, cfg))
        if filled > notional:
            size *= notional / filled * (1.0 - 1e-15)
    return size


def measure_order(snapshot: MarketSnapshot, *, symbol: Any, side: Any, venue: Any, sell_venue: Any = None,
                  notional: float | None, now: datetime, cfg: ExecutionConfig) -> MarketFacts:
    """The market facts of one order (a paired order buys on ``venue`` and sells on ``sell_venue``)."""
    spec = [(venue, side)] + ([(sell_venue, "sell")] if sell_venue is not None else [])
    legs: list[LegFacts] = []
    for leg_venue, leg_side in spec:
        leg, problem = leg_facts(snapshot, leg_venue, symbol, leg_side, now)
        if problem is not None:
            return MarketFacts(now, snapshot.fetched_at, notional, tuple(legs), problem=problem)
        legs.append(leg)
    if notional is None or not notional > 0:
        return MarketFacts(now, snapshot.fetched_at, notional, tuple(legs),
                           problem=Problem(Reason.FIELD_INVALID, "no usable notional to size the order with",
                                           "notional_usd"))
    size = size_for_notional(notional, legs, cfg)
    sized = []
    for leg in legs:
        slip = impact_slippage_bps(size, leg.touch_size, cfg)
        sized.append(replace(leg, size=size, fill_price=fill_price(leg.touch_price, leg.side, slip),
                             slippage_bps=slip))
    if not (math.isfinite(size) and size > 0 and all(math.isfinite(leg.fill_price) and leg.fill_price > 0
                                                     for leg in sized)):
        return MarketFacts(now, snapshot.fetched_at, notional, tuple(sized),
                           problem=Problem(Reason.QUOTE_INVALID, f"no usable size or fill price from this book "
                                           f"(size {size!r})", "size"))
    return MarketFacts(now, snapshot.fetched_at, notional, tuple(sized), size=size)


def fill_problem(leg: LegFacts, *, notional: float, limit: float, max_age_sec: float, max_deviation_bps: float,
                 now: datetime) -> str | None:
    """The broker's own refusals for one sized leg at fill time (defence in depth beside the gate)."""
    age = leg.age_at(now)
    if not age <= max_age_sec:
        return f"quote for {leg.symbol} on {leg.venue} is {age:.3g} s old at fill time (limit {max_age_sec:g} s)"
    if leg.size * leg.fill_price > notional * (1.0 + FILL_NOTIONAL_TOLERANCE):
        return (f"{leg.side} on {leg.venue} would fill {leg.size * leg.fill_price:.2f} USD, more than the checked "
                f"notional {notional:.2f} USD")
    tolerance = max_deviation_bps / 10_000.0
    worse = leg.fill_price > limit * (1 + tolerance) if leg.side == "buy" else leg.fill_price < limit * (1 - tolerance)
    if worse:
        return (f"{leg.side} on {leg.venue} would fill at {leg.fill_price:.6g}, beyond the order's price "
                f"{limit:.6g} by more than {max_deviation_bps:g} bps")
    return None
