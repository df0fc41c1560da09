"""Pre-trade checks: ``TradeGuardrails(cfg, kill_switch).check(signal)`` -> ``Decision`` (``ok, reason = ...``).

The prototype's checks, made fail-closed: every field a check reads must be present, a real number (not a bool, not
a string: ``agent_pipeline.numbers``, the same definition sizing uses), finite and in range, or the order is
denied with a reason code saying which (``reasons.Reason``); an exception inside any check is a ``CHECK_ERROR``
denial, never an approval. ``check`` itself never raises.

Two ways to use the gate:

- standalone (the prototype's contract): every number is read from the signal. Fields (its six are always
  required; the others only once the check that reads them is configured, or when present)::

    notional_usd > 0, expected_edge_bps (any finite), spread_bps >= 0 (negative = crossed quote),
    slippage_bps >= 0, data_age_sec >= 0 (negative = future-dated), paper (a bool)
    confidence in [0, 1]; size > 0 and quote_size >= 0; price > 0 and reference_price > 0; capital_usd >= 0
    (0 = no capital); strategy, symbol, venue (strings); side ("buy" | "sell"); bid <= ask when both given;
    order_key (a string); event_id (the agent run, for orders per run); strategy_hash and approvals (list of
    tokens) for the two-person rule.

- measured (``require_market=True``, as the execution layer builds it): the signal must carry ``market``, the
  ``market_facts.MarketFacts`` the execution layer measured from the market source's own quotes, and every
  market fact (spread, expected slippage, data age at decision time, touch size, the collar's reference mid, a
  pair's edge) is read from it; a missing, crossed, empty, stale or future-dated book is a denial. The agent's
  own values travel beside them as ``claimed_<key>``: validated, recorded, and a denial
  (``MARKET_CLAIM_MISMATCH``) when far from the measurement in the agent's favour, but never used to decide.
  ``symbol``, ``side``, ``venue`` and the limit ``price`` (and ``sell_price`` for a pair) are required. The limit
  is only a limit: one farther than ``max_limit_distance_bps`` from the price the order would fill at is refused
  (``LIMIT_PRICE_OFF_MARKET``), and every leg's ``size x fill price`` must stay within the notional.

A field from these lists that is present is validated even when no configured limit reads it, so an approved
order never carries a non-finite or out-of-range number the broker might use. When both ``notional_usd`` and
``size x price`` are present they must agree within ``max_notional_mismatch_bps`` (``NOTIONAL_MISMATCH``).

The daily loss is the sum of realised losses (negative PnL; gains do not offset it, as in the prototype) of the
current UTC trading date; more than ``max_daily_loss_usd`` denies and trips the kill switch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agent_pipeline.numbers import finite_number, real_number
from agent_pipeline.trading.approvals import approval_key, builtin_fingerprints, verify
from agent_pipeline.trading.config import GuardrailConfig
from agent_pipeline.trading.kill_switch import KillSwitch, KillSwitchState, KillSwitchStatus
from agent_pipeline.trading.market_facts import FILL_NOTIONAL_TOLERANCE, MarketFacts
from agent_pipeline.trading.positions import Position, apply_fill, position_after
from agent_pipeline.trading.reasons import ALWAYS_TRIP, Reason
from agent_pipeline.trading.state import GateState, MemoryGateState, trading_date

PROTOTYPE_SIGNAL_KEYS = ("notional_usd", "expected_edge_bps", "spread_bps", "slippage_bps", "data_age_sec", "paper")
SIDES = ("buy", "sell")
OPTIONAL_NUMBERS: dict[str, dict[str, Any]] = {
    "confidence": {"minimum": 0.0, "maximum": 1.0},
    "size": {"minimum": 0.0, "strict_min": True},
    "quote_size": {"minimum": 0.0},
    "price": {"minimum": 0.0, "strict_min": True},
    "reference_price": {"minimum": 0.0, "strict_min": True},
    "capital_usd": {"minimum": 0.0},
    "sell_price": {"minimum": 0.0, "strict_min": True},
    "buy_price": {"minimum": 0.0, "strict_min": True},
}

# Market facts the measured gate reads from ``market`` only; the agent's values for them are claims.
MEASURED_KEYS = ("spread_bps", "slippage_bps", "data_age_sec", "quote_size", "reference_price", "bid", "ask", "mid")
CLAIM_PREFIX = "claimed_"
CLAIMS: dict[str, dict[str, Any]] = {
    "spread_bps": {"minimum": 0.0, "negative": Reason.CROSSED_QUOTE},
    "slippage_bps": {"minimum": 0.0},
    "data_age_sec": {"minimum": 0.0, "negative": Reason.FUTURE_DATED_DATA},
    "quote_size": {"minimum": 0.0},
    "reference_price": {"minimum": 0.0, "strict_min": True},
    "bid": {"minimum": 0.0, "strict_min": True},
    "ask": {"minimum": 0.0, "strict_min": True},
    "mid": {"minimum": 0.0, "strict_min": True},
    "size": {"minimum": 0.0, "strict_min": True},
}


@dataclass(frozen=True)
class Decision:
    """One gate decision. Unpacks as ``ok, reason = decision``; ``code`` is the stable reason code."""

    ok: bool
    code: Reason
    reason: str
    decided_at: datetime
    kill_switch_state: str = KillSwitchState.ACTIVE.value
    field: str | None = None
    inputs: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    tripped: bool = False

    def __iter__(self) -> Iterator[Any]:
        yield self.ok
        yield self.reason

    def __bool__(self) -> bool:
        return self.ok

    @property
    def reason_code(self) -> str:
        return self.code.value


class _Deny(Exception):
    def __init__(self, code: Reason, message: str, field_name: str | None = None):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field_name


def _num(signal: Mapping[str, Any], key: str, *, minimum: float | None = None, strict_min: bool = False,
         maximum: float | None = None, negative: Reason = Reason.FIELD_NEGATIVE) -> float:
    """A required finite real number within range, else a denial naming the field."""
    if key not in signal:
        raise _Deny(Reason.FIELD_MISSING, f"{key} is missing", key)
    raw = signal[key]
    value = real_number(raw)
    if value is None:
        raise _Deny(Reason.FIELD_NOT_NUMBER, f"{key} must be a number, got {type(raw).__name__} {raw!r:.40}", key)
    if not math.isfinite(value):
        raise _Deny(Reason.FIELD_NOT_FINITE, f"{key} must be finite, got {value!r}", key)
    if minimum is not None:
        if value < 0 <= minimum:
            raise _Deny(negative, f"{key} must not be negative, got {value!r}", key)
        if value < minimum or (strict_min and value == minimum):
            bound = f"> {minimum:g}" if strict_min else f">= {minimum:g}"
            raise _Deny(Reason.FIELD_OUT_OF_RANGE, f"{key} must be {bound}, got {value!r}", key)
    if maximum is not None and value > maximum:
        raise _Deny(Reason.FIELD_OUT_OF_RANGE, f"{key} must be <= {maximum:g}, got {value!r}", key)
    return value


def _text(signal: Mapping[str, Any], key: str, choices: tuple[str, ...] | None = None) -> str:
    if key not in signal:
        raise _Deny(Reason.FIELD_MISSING, f"{key} is missing", key)
    raw = signal[key]
    if not isinstance(raw, str) or not raw.strip():
        raise _Deny(Reason.FIELD_INVALID, f"{key} must be a non-empty string, got {raw!r:.40}", key)
    if choices is not None and raw not in choices:
        raise _Deny(Reason.FIELD_INVALID, f"{key} must be one of {list(choices)}, got {raw!r:.40}", key)
    return raw


class TradeGuardrails:
    """The gate. ``state`` defaults to memory; the execution layer passes the DuckDB-backed state."""

    def __init__(self, cfg: GuardrailConfig | None = None, kill_switch: KillSwitch | None = None, *,
                 state: GateState | None = None, clock: Callable[[], datetime] | None = None,
                 environ: Mapping[str, str] | None = None, require_market: bool = False):
        self.cfg = cfg if cfg is not None else GuardrailConfig()
        self.require_market = require_market  # every order must carry measured market facts
        self.kill = kill_switch if kill_switch is not None else KillSwitch()
        self.state: GateState = state if state is not None else MemoryGateState()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._environ = environ
        self._exempt: frozenset[str] | None = None

    # -- the prototype's API --------------------------------------------------------------------------------------
    @property
    def day_key(self) -> str:
        return trading_date(self._clock()).isoformat()

    @property
    def daily_loss_usd(self) -> float:
        return self.state.daily_loss_usd(trading_date(self._clock()))

    def record_pnl(self, pnl_usd: float) -> None:
        """Add one realised PnL to today's (UTC) books; a breach trips the kill switch at once.

        A PnL that is not a finite number means the books are unknown: the kill switch trips and ValueError
        is raised.
        """
        number = finite_number(pnl_usd)
        if number is None:
            self.kill.trip(f"record_pnl got a non-finite or non-numeric PnL {pnl_usd!r}; books unknown", by="gate")
            raise ValueError(f"record_pnl: PnL must be a finite number, got {pnl_usd!r}")
        day = trading_date(self._clock())
        self.state.add_pnl(day, number)
        loss = self.state.daily_loss_usd(day)
        if loss > self.cfg.max_daily_loss_usd:
            self.kill.trip(self._loss_message(loss, day), by="gate")

    def _loss_message(self, loss: float, day) -> str:
        return (f"daily loss limit breached: realised loss {loss:.2f} USD on {day} (UTC) exceeds "
                f"{self.cfg.max_daily_loss_usd:g} USD")

    def check(self, signal: Mapping[str, Any]) -> Decision:
        """Approve or deny one order; never raises, never approves what it could not fully check."""
        now = self._clock()
        status: KillSwitchStatus | None = None
        try:
            status = self.kill.status()
            self._evaluate(signal, now, status)
            decision = Decision(True, Reason.OK, "OK", now, status.state.value, inputs=signal)
        except _Deny as deny:
            decision = self._deny(deny.code, deny.message, now, status, signal, deny.field)
        except Exception as exc:  # a broken check denies
            decision = self._deny(Reason.CHECK_ERROR, f"check raised {type(exc).__name__}: {exc}", now, status,
                                  signal, None)
        return decision

    def record_order(self, signal: Mapping[str, Any], decision: Decision) -> None:
        """Count an accepted order towards rate limits, the rolling notional and duplicate protection."""
        if decision.ok:
            run = signal.get("event_id")
            self.state.note_order(decision.decided_at, str(signal.get("strategy") or ""),
                                  float(real_number(signal["notional_usd"])), signal.get("order_key"),
                                  run=run if isinstance(run, str) else None)

    # -- internals -------------------------------------------------------------------------------------------
    def _deny(self, code: Reason, message: str, now: datetime, status: KillSwitchStatus | None,
              signal: Any, field_name: str | None) -> Decision:
        tripped = False
        if code in ALWAYS_TRIP or code.value in self.cfg.trip_on:
            try:
                self.kill.trip(f"{code.value}: {message}", by="gate")
                tripped = True
            except Exception as exc:  # the denial stands; say that the trip failed
                message = f"{message} (kill switch trip failed: {exc})"
        state = status.state.value if status is not None else KillSwitchState.HALTED.value
        inputs = signal if isinstance(signal, Mapping) else {"signal": repr(signal)[:200]}
        return Decision(False, code, message, now, state, field_name, inputs, tripped)

    def _evaluate(self, signal: Mapping[str, Any], now: datetime, status: KillSwitchStatus) -> None:
        cfg = self.cfg
        if not isinstance(signal, Mapping):
            raise _Deny(Reason.SIGNAL_INVALID, f"signal must be a mapping, got {type(signal).__name__}")
        if status.state is KillSwitchState.HALTED:
            code = Reason.KILL_SWITCH_HALTED if status.readable else Reason.KILL_SWITCH_UNREADABLE
            raise _Deny(code, f"kill switch HALTED: {status.reason}")
        if status.state is not KillSwitchState.REDUCING and status.state is not KillSwitchState.ACTIVE:
            raise _Deny(Reason.KILL_SWITCH_UNREADABLE, f"unknown kill switch state {status.state!r}")
        measured = self.require_market or "market" in signal

        # -- the agent's own fields, always validated ----------------------------------------------------------
        notional = _num(signal, "notional_usd", minimum=0.0, strict_min=True)
        edge = _num(signal, "expected_edge_bps")
        claims: dict[str, float] = {}
        if measured:  # the market comes from `market`; the agent's values are claims, validated all the same
            for key, bounds in CLAIMS.items():
                if CLAIM_PREFIX + key in signal:
                    claims[key] = _num(signal, CLAIM_PREFIX + key, **bounds)
        else:
            spread = _num(signal, "spread_bps", minimum=0.0, negative=Reason.CROSSED_QUOTE)
            slippage = _num(signal, "slippage_bps", minimum=0.0)
            age = _num(signal, "data_age_sec", minimum=0.0, negative=Reason.FUTURE_DATED_DATA)
        if "paper" not in signal:
            raise _Deny(Reason.FIELD_MISSING, "paper is missing", "paper")
        paper = signal["paper"]
        if not isinstance(paper, bool):
            raise _Deny(Reason.FIELD_INVALID, f"paper must be true or false, got {paper!r:.40}", "paper")
        prefix = CLAIM_PREFIX if measured else ""
        if prefix + "bid" in signal or prefix + "ask" in signal:
            bid = _num(signal, prefix + "bid", minimum=0.0, strict_min=True)
            ask = _num(signal, prefix + "ask", minimum=0.0, strict_min=True)
            if bid > ask:
                raise _Deny(Reason.CROSSED_QUOTE, f"crossed quote: bid {bid:g} > ask {ask:g}", prefix + "bid")
        side = _text(signal, "side", SIDES) if "side" in signal or measured else None
        for key, bounds in OPTIONAL_NUMBERS.items():  # present means checked, even if no limit reads it
            if key in signal:
                _num(signal, key, **bounds)
        for key in ("strategy", "symbol", "venue"):
            if key in signal or (measured and key != "strategy"):
                _text(signal, key)

        # -- duplicates: an order already placed stays placed, whatever the market does now ----------------
        if cfg.require_order_key or "order_key" in signal:
            key = _text(signal, "order_key")
            if self.state.order_key_seen(key):
                raise _Deny(Reason.DUPLICATE_ORDER, f"order {key} was already placed (retry of an op or run)",
                            "order_key")

        # -- the market: measured facts, or the prototype's fields -----------------------------------------------
        facts: MarketFacts | None = None
        if measured:
            facts = self._measured_market(signal, side, notional)
            spread, slippage, age = facts.spread_bps, facts.slippage_bps, facts.age_at(now)
            if age < 0:
                raise _Deny(Reason.FUTURE_DATED_DATA, f"quote stamped {-age:.3g} s after the decision time",
                            "data_age_sec")
            if facts.edge_bps is not None:  # a pair's edge is a market fact: the smaller of claim and measurement
                edge = min(edge, facts.edge_bps)
        self._check_notional_agrees(signal, notional, measured)
        if "capital_usd" in signal and _num(signal, "capital_usd", minimum=0.0) == 0:
            raise _Deny(Reason.NO_CAPITAL, "the strategy has no capital (capital_usd is 0)", "capital_usd")

        # -- paper, daily loss, circuit breaker --------------------------------------------------------------
        if cfg.paper_only and paper is not True:
            raise _Deny(Reason.PAPER_ONLY, "paper-only mode: signal is not marked paper", "paper")
        day = trading_date(now)
        loss = self.state.daily_loss_usd(day)
        if not math.isfinite(loss) or loss > cfg.max_daily_loss_usd:
            raise _Deny(Reason.DAILY_LOSS_LIMIT, self._loss_message(loss, day))
        if facts is not None:
            self._check_fill_losses(signal, facts, loss, day)
        if cfg.breaker_in_gate:
            breach = self.state.breaker_breach(now)
            if breach:
                raise _Deny(Reason.CIRCUIT_BREAKER, f"circuit breaker: {breach}")

        # -- reduce-only ------------------------------------------------------------------------------------
        if status.state is KillSwitchState.REDUCING:
            self._require_reducing(signal, side, status)

        # -- the prototype's limits (on measured values when the market is measured) ---------------------------
        what = "measured " if measured else ""
        if notional > cfg.max_order_notional_usd:
            raise _Deny(Reason.NOTIONAL_LIMIT, f"notional {notional:.2f} USD exceeds {cfg.max_order_notional_usd:g}",
                        "notional_usd")
        if edge < cfg.min_expected_edge_bps:
            source = "measured pair " if facts is not None and facts.edge_bps is not None and edge == \
                facts.edge_bps else ""
            raise _Deny(Reason.EDGE_TOO_LOW, f"{source}expected edge {edge:.3g} bps below "
                        f"{cfg.min_expected_edge_bps:g}", "expected_edge_bps")
        if spread > cfg.max_spread_bps:
            raise _Deny(Reason.SPREAD_TOO_WIDE, f"{what}spread {spread:.3g} bps above {cfg.max_spread_bps:g}",
                        "spread_bps")
        if slippage > cfg.max_slippage_bps:
            raise _Deny(Reason.SLIPPAGE_TOO_HIGH, f"{what}slippage {slippage:.3g} bps above "
                        f"{cfg.max_slippage_bps:g}", "slippage_bps")
        if age > cfg.max_staleness_sec:
            raise _Deny(Reason.STALE_DATA, f"{what}data {age:.3g} s old, limit {cfg.max_staleness_sec:g} s",
                        "data_age_sec")
        if facts is not None:
            self._check_claims(claims, facts)

        # -- checks beyond the prototype, each once configured ----------------------------------------------------
        if cfg.min_confidence is not None:
            confidence = _num(signal, "confidence", minimum=0.0, maximum=1.0)
            if confidence < cfg.min_confidence:
                raise _Deny(Reason.CONFIDENCE_TOO_LOW, f"confidence {confidence:.3g} below {cfg.min_confidence:g}",
                            "confidence")
        if cfg.max_quote_fraction is not None:
            size = _num(signal, "size", minimum=0.0, strict_min=True)
            quoted = facts.quote_size if facts is not None else _num(signal, "quote_size", minimum=0.0)
            if quoted <= 0 or size / quoted > cfg.max_quote_fraction:
                raise _Deny(Reason.LIQUIDITY, f"size {size:.6g} against {what}quoted {quoted:.6g} exceeds "
                            f"{cfg.max_quote_fraction:g} of the book", "size")
        if cfg.max_price_deviation_bps is not None:
            price = _num(signal, "price", minimum=0.0, strict_min=True)
            reference = (facts.reference_price if facts is not None
                         else _num(signal, "reference_price", minimum=0.0, strict_min=True))
            deviation = abs(price / reference - 1.0) * 10_000.0
            if not deviation <= cfg.max_price_deviation_bps:
                raise _Deny(Reason.PRICE_COLLAR, f"price {price:.6g} is {deviation:.1f} bps from {what}reference "
                            f"{reference:.6g} (collar {cfg.max_price_deviation_bps:g} bps)", "price")
        strategy = None
        if (cfg.max_leverage is not None or cfg.max_orders_per_window_per_strategy is not None
                or cfg.max_strategy_turnover is not None):
            strategy = _text(signal, "strategy")
        if cfg.max_leverage is not None:
            capital = _num(signal, "capital_usd", minimum=0.0, strict_min=True)
            symbol = _text(signal, "symbol")
            exposure = self.state.gross_exposure_usd(strategy)
            added = self._exposure_added(signal, side, notional, strategy, symbol, facts)
            leverage = (exposure + added) / capital
            if added > 0 and not leverage <= cfg.max_leverage:
                raise _Deny(Reason.LEVERAGE_LIMIT, f"leverage {leverage:.2f}x (gross exposure {exposure:.0f} USD "
                            f"+ {added:.0f} on {capital:.0f} USD of capital) above {cfg.max_leverage:g}x",
                            "capital_usd")
        if cfg.max_orders_per_run is not None:
            run = _text(signal, "event_id")
            placed = self.state.orders_in_run(run)
            if placed >= cfg.max_orders_per_run:
                raise _Deny(Reason.ORDERS_PER_RUN_LIMIT, f"agent run {run[:16]} already placed {placed} orders "
                            f"(limit {cfg.max_orders_per_run})", "event_id")
        window_start = now - timedelta(seconds=cfg.rate_window_sec)
        if cfg.max_orders_per_window is not None:
            count, _ = self.state.orders_since(window_start)
            if count >= cfg.max_orders_per_window:
                raise _Deny(Reason.GLOBAL_RATE_LIMIT, f"{count} orders in the last {cfg.rate_window_sec:g} s "
                            f"(limit {cfg.max_orders_per_window})")
        if cfg.max_orders_per_window_per_strategy is not None:
            count, _ = self.state.orders_since(window_start, strategy)
            if count >= cfg.max_orders_per_window_per_strategy:
                raise _Deny(Reason.STRATEGY_RATE_LIMIT, f"strategy {strategy}: {count} orders in the last "
                            f"{cfg.rate_window_sec:g} s (limit {cfg.max_orders_per_window_per_strategy})",
                            "strategy")
        rolling_start = now - timedelta(seconds=cfg.rolling_notional_window_sec)
        if cfg.max_rolling_notional_usd is not None:
            _, spent = self.state.orders_since(rolling_start)
            if not spent + notional <= cfg.max_rolling_notional_usd:
                raise _Deny(Reason.ROLLING_NOTIONAL_LIMIT, f"{spent:.0f} USD already placed in the last "
                            f"{cfg.rolling_notional_window_sec:g} s; {notional:.0f} more exceeds "
                            f"{cfg.max_rolling_notional_usd:g}", "notional_usd")
        if cfg.max_strategy_turnover is not None:
            capital = _num(signal, "capital_usd", minimum=0.0, strict_min=True)
            _, spent = self.state.orders_since(rolling_start, strategy)
            turnover = (spent + notional) / capital
            if not turnover <= cfg.max_strategy_turnover:
                raise _Deny(Reason.STRATEGY_TURNOVER_LIMIT, f"strategy {strategy}: {spent:.0f} USD placed in the "
                            f"last {cfg.rolling_notional_window_sec:g} s; {notional:.0f} more is {turnover:.2f}x its "
                            f"capital {capital:.0f} USD (limit {cfg.max_strategy_turnover:g}x)", "notional_usd")
        if cfg.require_approval:
            self._require_approvals(signal, now)

    def _measured_market(self, signal: Mapping[str, Any], side: str | None, notional: float) -> MarketFacts:
        """The order's measured market facts, checked to belong to this very order and to be tradeable."""
        facts = signal.get("market")
        if not isinstance(facts, MarketFacts):
            raise _Deny(Reason.MARKET_DATA_MISSING, "no measured market facts for this order (the gate decides on "
                        "the market source's quotes, never on the agent's word)", "market")
        price = _num(signal, "price", minimum=0.0, strict_min=True)
        limits = [("price", signal["venue"], side, price)]
        sell_venue = signal.get("sell_venue")
        if sell_venue is not None:
            sell_venue = _text(signal, "sell_venue")
            if side != "buy":
                raise _Deny(Reason.FIELD_INVALID, "a paired order buys on venue and sells on sell_venue; side must "
                            "be buy", "side")
            limits.append(("sell_price", sell_venue, "sell", _num(signal, "sell_price", minimum=0.0,
                                                                   strict_min=True)))
        if facts.problem is not None:
            raise _Deny(facts.problem.code, facts.problem.message, facts.problem.field)
        if not facts.ok or len(facts.legs) != len(limits) or facts.notional_usd != notional or any(
                leg.venue != venue or leg.side != leg_side or leg.symbol != signal["symbol"]
                for leg, (_, venue, leg_side, _) in zip(facts.legs, limits, strict=False)):
            raise _Deny(Reason.MARKET_DATA_MISSING, "the measured market facts are not those of this order "
                        "(venue, side, symbol or notional differ)", "market")
        size = _num(signal, "size", minimum=0.0, strict_min=True)
        if size != facts.size:
            raise _Deny(Reason.NOTIONAL_MISMATCH, f"size {size:.8g} is not the size measured from the book "
                        f"({facts.size:.8g})", "size")
        for leg, (key, _, _, limit) in zip(facts.legs, limits, strict=True):
            filled = leg.size * leg.fill_price
            if filled > notional * (1.0 + FILL_NOTIONAL_TOLERANCE):
                raise _Deny(Reason.NOTIONAL_MISMATCH, f"{leg.side} on {leg.venue} would fill {filled:.2f} USD, more "
                            f"than the checked notional {notional:.2f} USD", "size")
            distance = abs(limit / leg.fill_price - 1.0) * 10_000.0
            if not distance <= self.cfg.max_limit_distance_bps:
                raise _Deny(Reason.LIMIT_PRICE_OFF_MARKET, f"{key} {limit:.8g} is {distance:.1f} bps from the "
                            f"{leg.side} fill price {leg.fill_price:.8g} on {leg.venue} (bid {leg.bid:.8g}, ask "
                            f"{leg.ask:.8g}; limit {self.cfg.max_limit_distance_bps:g} bps)", key)
        return facts

    def _check_fill_losses(self, signal: Mapping[str, Any], facts: MarketFacts, loss: float, day) -> None:
        """Today's loss plus what this order's fills would realise stays within the daily limit, fill by fill.

        Each leg is booked against the held position with the ledger's own accounting (``positions.apply_fill``)
        at the measured fill price and fee, as the broker will fill it; a leg's gain never offsets another's loss
        (the ledger books each fill's loss on its own).
        """
        strategy, symbol = _text(signal, "strategy"), _text(signal, "symbol")
        qty, avg = self.state.position(strategy, symbol)
        held = Position(qty, avg)
        total = loss
        for leg in facts.legs:
            fee = leg.fill_price * leg.size * leg.fee_bps / 10_000.0
            held, pnl = apply_fill(held, side=leg.side, size=leg.size, price=leg.fill_price, fee_usd=fee)
            total += max(0.0, -pnl)
            if not (math.isfinite(total) and total <= self.cfg.max_daily_loss_usd):
                raise _Deny(Reason.DAILY_LOSS_LIMIT, f"daily loss limit: this order's fills would realise {total - loss:.2f} USD of "
                            f"loss on top of {loss:.2f} USD already lost on {day} (UTC): {total:.2f} USD exceeds "
                            f"{self.cfg.max_daily_loss_usd:g} USD", "size")

    def _check_notional_agrees(self, signal: Mapping[str, Any], notional: float, measured: bool) -> None:
        """``notional_usd`` and ``size x price`` are one amount: a disagreement means a broken or hostile agent.

        Measured, the agent's own proposal (``proposed_notional_usd``, ``claimed_size``, ``price``) is compared;
        the checked size comes from the book and was checked leg by leg above.
        """
        size_key, amount = (CLAIM_PREFIX + "size", real_number(signal.get("proposed_notional_usd"))) if measured \
            else ("size", notional)
        if size_key not in signal or "price" not in signal:
            return
        if amount is None or not math.isfinite(amount) or amount <= 0:
            amount = notional
        implied = _num(signal, size_key, minimum=0.0, strict_min=True) * _num(signal, "price", minimum=0.0,
                                                                              strict_min=True)
        gap = abs(implied / amount - 1.0) * 10_000.0
        if not gap <= self.cfg.max_notional_mismatch_bps:
            raise _Deny(Reason.NOTIONAL_MISMATCH, f"notional {amount:.2f} USD disagrees with {size_key} x price = "
                        f"{implied:.2f} USD by {gap:.0f} bps (tolerance {self.cfg.max_notional_mismatch_bps:g} bps)",
                        "notional_usd")

    def _check_claims(self, claims: Mapping[str, float], facts: MarketFacts) -> None:
        """A claim far from the market in the agent's favour is a denial; the decision used the measurement."""
        cfg = self.cfg

        def deny(key: str, claimed: float, measured: float, how_far: str, tolerance: str) -> None:
            raise _Deny(Reason.MARKET_CLAIM_MISMATCH, f"claimed {key} {claimed:.6g} against the measured "
                        f"{measured:.6g}: {how_far} (tolerance {tolerance})", CLAIM_PREFIX + key)

        for key, measured, tolerance in (("spread_bps", facts.spread_bps, cfg.claim_spread_tolerance_bps),
                                         ("slippage_bps", facts.slippage_bps, cfg.claim_slippage_tolerance_bps)):
            if key in claims and measured - claims[key] > tolerance:
                deny(key, claims[key], measured, f"{measured - claims[key]:.3g} bps too low", f"{tolerance:g} bps")
        age = facts.snapshot_age_sec
        if "data_age_sec" in claims and age - claims["data_age_sec"] > cfg.claim_age_tolerance_sec:
            deny("data_age_sec", claims["data_age_sec"], age, f"{age - claims['data_age_sec']:.3g} s too young",
                 f"{cfg.claim_age_tolerance_sec:g} s")
        mids = [leg.mid for leg in facts.legs]
        leg0 = facts.legs[0]
        for key, low, high in (("reference_price", min(mids), max(mids)), ("mid", min(mids), max(mids)),
                               ("bid", leg0.bid, leg0.bid), ("ask", leg0.ask, leg0.ask)):
            if key in claims:
                nearest = min(max(claims[key], low), high)
                distance = abs(claims[key] / nearest - 1.0) * 10_000.0
                if distance > cfg.claim_reference_tolerance_bps:
                    deny(key, claims[key], nearest, f"{distance:.0f} bps away",
                         f"{cfg.claim_reference_tolerance_bps:g} bps")

    def _exposure_added(self, signal: Mapping[str, Any], side: str | None, notional: float, strategy: str,
                        symbol: str, facts: MarketFacts | None) -> float:
        """How much the order changes the strategy's gross exposure (negative when it reduces a position).

        Exposure is what the ledger books: |qty| x average price per symbol. The order's legs are applied to the
        held position with the ledger's own accounting (``positions.position_after``) at the measured fill prices
        (standalone: the signal's price), so a pair that buys and sells one size adds (almost) nothing and a
        reducing order is never refused for leverage. Without a side and size the whole notional counts.
        """
        size = real_number(signal.get("size"))
        if side not in SIDES or size is None or not math.isfinite(size) or size <= 0:
            return notional
        if facts is not None:
            legs = [(leg.side, leg.fill_price) for leg in facts.legs]
        else:
            price = real_number(signal.get("price"))
            price = price if price is not None and math.isfinite(price) and price > 0 else notional / size
            legs = [(side, price)]
            sell_price = real_number(signal.get("sell_price"))
            if signal.get("sell_venue") and sell_price is not None and math.isfinite(sell_price) and sell_price > 0:
                legs.append(("sell", sell_price))
        qty, avg = self.state.position(strategy, symbol)
        before = abs(qty) * avg
        for leg_side, price in legs:
            qty, avg, _ = position_after(qty, avg, leg_side, size, price)
        return abs(qty) * avg - before

    def _require_reducing(self, signal: Mapping[str, Any], side: str | None, status: KillSwitchStatus) -> None:
        strategy = _text(signal, "strategy")
        symbol = _text(signal, "symbol")
        side = side or _text(signal, "side", SIDES)
        size = _num(signal, "size", minimum=0.0, strict_min=True)
        held = self.state.position_qty(strategy, symbol)
        paired = bool(signal.get("sell_venue"))
        reduces = not paired and ((side == "sell" and 0 < size <= held) or (side == "buy" and 0 < size <= -held))
        if not reduces:
            raise _Deny(Reason.KILL_SWITCH_REDUCING, f"kill switch REDUCING ({status.reason}): {side} {size:.6g} "
                        f"{symbol} does not reduce the {strategy} position of {held:.6g}", "side")

    def _require_approvals(self, signal: Mapping[str, Any], now: datetime) -> None:
        strategy_hash = _text(signal, "strategy_hash")
        if self.cfg.approval_exempt_builtins:
            if self._exempt is None:
                self._exempt = builtin_fingerprints()
            if strategy_hash in self._exempt:
                return
        tokens = signal.get("approvals")
        if tokens is not None and (isinstance(tokens, (str, bytes)) or not isinstance(tokens, (list, tuple))):
            raise _Deny(Reason.FIELD_INVALID, "approvals must be a list of tokens", "approvals")
        result = verify(tokens, strategy_hash, key=approval_key(self._environ), now=now)
        if not result.ok:
            raise _Deny(result.code, result.message, "approvals")
