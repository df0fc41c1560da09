"""Pre-trade checks: ``TradeGuardrails(cfg, kill_switch).check(signal)`` -> ``Decision`` (``ok, reason = ...``).

The seed's checks, made fail-closed: every field a check reads must be present, a real number (not a bool, not
a string), finite and in range, or the order is denied with a reason code saying which (``reasons.Reason``);
an exception inside any check is a ``CHECK_ERROR`` denial, never an approval. ``check`` itself never raises.

Signal fields (the seed's six are always required; the others only once the check that reads them is
configured, or when present):

    notional_usd > 0, expected_edge_bps (any finite), spread_bps >= 0 (negative = crossed quote),
    slippage_bps >= 0, data_age_sec >= 0 (negative = future-dated), paper (a bool)
    confidence in [0, 1]; size > 0 and quote_size >= 0; price > 0 and reference_price > 0; capital_usd > 0;
    strategy, symbol, venue (strings); side ("buy" | "sell"); bid <= ask when both given; order_key (a string);
    strategy_hash and approvals (list of tokens) for the two-person rule.

A field from this list that is present is validated even when no configured limit reads it, so an approved
order never carries a non-finite or out-of-range number the broker might use.

The daily loss is the sum of realised losses (negative PnL; gains do not offset it, as in the seed) of the
current UTC trading date; more than ``max_daily_loss_usd`` denies and trips the kill switch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Mapping
import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agent_pipeline.trading.approvals import approval_key, builtin_fingerprints, verify
from agent_pipeline.trading.config import GuardrailConfig
from agent_pipeline.trading.kill_switch import KillSwitch, KillSwitchState, KillSwitchStatus
from agent_pipeline.trading.reasons import ALWAYS_TRIP, Reason
from agent_pipeline.trading.state import GateState, MemoryGateState, trading_date

SEED_KEYS = ("notional_usd", "expected_edge_bps", "spread_bps", "slippage_bps", "data_age_sec", "paper")
SIDES = ("buy", "sell")
OPTIONAL_NUMBERS: dict[str, dict[str, Any]] = {
    "confidence": {"minimum": 0.0, "maximum": 1.0},
    "size": {"minimum": 0.0, "strict_min": True},
    "quote_size": {"minimum": 0.0},
    "price": {"minimum": 0.0, "strict_min": True},
    "reference_price": {"minimum": 0.0, "strict_min": True},
    "capital_usd": {"minimum": 0.0, "strict_min": True},
    "sell_price": {"minimum": 0.0, "strict_min": True},
    "buy_price": {"minimum": 0.0, "strict_min": True},
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
    if isinstance(raw, bool) or not isinstance(raw, numbers.Real):
        raise _Deny(Reason.FIELD_NOT_NUMBER, f"{key} must be a number, got {type(raw).__name__} {raw!r:.40}", key)
    try:
        value = float(raw)
    except (OverflowError, ValueError, TypeError):
        raise _Deny(Reason.FIELD_NOT_FINITE, f"{key} is not representable as a finite float", key) from None
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
                 environ: Mapping[str, str] | None = None):
        self.cfg = cfg if cfg is not None else GuardrailConfig()
        self.kill = kill_switch if kill_switch is not None else KillSwitch()
        self.state: GateState = state if state is not None else MemoryGateState()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._environ = environ
        self._exempt: frozenset[str] | None = None

    # -- the seed's API --------------------------------------------------------------------------------------
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
        if isinstance(pnl_usd, bool) or not isinstance(pnl_usd, numbers.Real) or not math.isfinite(float(pnl_usd)):
            self.kill.trip(f"record_pnl got a non-finite or non-numeric PnL {pnl_usd!r}; books unknown", by="gate")
            raise ValueError(f"record_pnl: PnL must be a finite number, got {pnl_usd!r}")
        day = trading_date(self._clock())
        self.state.add_pnl(day, float(pnl_usd))
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
            self.state.note_order(decision.decided_at, str(signal.get("strategy") or ""),
                                  float(signal["notional_usd"]), signal.get("order_key"))

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

        # -- the seed's six fields, always required and validated --------------------------------------------
        notional = _num(signal, "notional_usd", minimum=0.0, strict_min=True)
        edge = _num(signal, "expected_edge_bps")
        spread = _num(signal, "spread_bps", minimum=0.0, negative=Reason.CROSSED_QUOTE)
        slippage = _num(signal, "slippage_bps", minimum=0.0)
        age = _num(signal, "data_age_sec", minimum=0.0, negative=Reason.FUTURE_DATED_DATA)
        if "paper" not in signal:
            raise _Deny(Reason.FIELD_MISSING, "paper is missing", "paper")
        paper = signal["paper"]
        if not isinstance(paper, bool):
            raise _Deny(Reason.FIELD_INVALID, f"paper must be true or false, got {paper!r:.40}", "paper")
        if "bid" in signal or "ask" in signal:
            bid = _num(signal, "bid", minimum=0.0, strict_min=True)
            ask = _num(signal, "ask", minimum=0.0, strict_min=True)
            if bid > ask:
                raise _Deny(Reason.CROSSED_QUOTE, f"crossed quote: bid {bid:g} > ask {ask:g}", "bid")
        side = _text(signal, "side", SIDES) if "side" in signal else None
        for key, bounds in OPTIONAL_NUMBERS.items():  # present means checked, even if no limit reads it
            if key in signal:
                _num(signal, key, **bounds)
        for key in ("strategy", "symbol", "venue"):
            if key in signal:
                _text(signal, key)

        # -- duplicates, paper, daily loss, circuit breaker ----------------------------------------------------
        if cfg.require_order_key or "order_key" in signal:
            key = _text(signal, "order_key")
            if self.state.order_key_seen(key):
                raise _Deny(Reason.DUPLICATE_ORDER, f"order {key} was already placed (retry of an op or run)",
                            "order_key")
        if cfg.paper_only and paper is not True:
            raise _Deny(Reason.PAPER_ONLY, "paper-only mode: signal is not marked paper", "paper")
        day = trading_date(now)
        loss = self.state.daily_loss_usd(day)
        if not math.isfinite(loss) or loss > cfg.max_daily_loss_usd:
            raise _Deny(Reason.DAILY_LOSS_LIMIT, self._loss_message(loss, day))
        if cfg.breaker_in_gate:
            breach = self.state.breaker_breach(now)
            if breach:
                raise _Deny(Reason.CIRCUIT_BREAKER, f"circuit breaker: {breach}")

        # -- reduce-only ------------------------------------------------------------------------------------
        if status.state is KillSwitchState.REDUCING:
            self._require_reducing(signal, side, status)

        # -- the seed's limits ------------------------------------------------------------------------------
        if notional > cfg.max_order_notional_usd:
            raise _Deny(Reason.NOTIONAL_LIMIT, f"notional {notional:.2f} USD exceeds {cfg.max_order_notional_usd:g}",
                        "notional_usd")
        if edge < cfg.min_expected_edge_bps:
            raise _Deny(Reason.EDGE_TOO_LOW, f"expected edge {edge:.3g} bps below {cfg.min_expected_edge_bps:g}",
                        "expected_edge_bps")
        if spread > cfg.max_spread_bps:
            raise _Deny(Reason.SPREAD_TOO_WIDE, f"spread {spread:.3g} bps above {cfg.max_spread_bps:g}", "spread_bps")
        if slippage > cfg.max_slippage_bps:
            raise _Deny(Reason.SLIPPAGE_TOO_HIGH, f"slippage {slippage:.3g} bps above {cfg.max_slippage_bps:g}",
                        "slippage_bps")
        if age > cfg.max_staleness_sec:
            raise _Deny(Reason.STALE_DATA, f"data {age:.3g} s old, limit {cfg.max_staleness_sec:g} s",
                        "data_age_sec")

        # -- checks beyond the seed, each once configured ----------------------------------------------------
        if cfg.min_confidence is not None:
            confidence = _num(signal, "confidence", minimum=0.0, maximum=1.0)
            if confidence < cfg.min_confidence:
                raise _Deny(Reason.CONFIDENCE_TOO_LOW, f"confidence {confidence:.3g} below {cfg.min_confidence:g}",
                            "confidence")
        if cfg.max_quote_fraction is not None:
            size = _num(signal, "size", minimum=0.0, strict_min=True)
            quoted = _num(signal, "quote_size", minimum=0.0)
            if quoted <= 0 or size / quoted > cfg.max_quote_fraction:
                raise _Deny(Reason.LIQUIDITY, f"size {size:.6g} against quoted {quoted:.6g} exceeds "
                            f"{cfg.max_quote_fraction:g} of the book", "size")
        if cfg.max_price_deviation_bps is not None:
            price = _num(signal, "price", minimum=0.0, strict_min=True)
            reference = _num(signal, "reference_price", minimum=0.0, strict_min=True)
            deviation = abs(price / reference - 1.0) * 10_000.0
            if not deviation <= cfg.max_price_deviation_bps:
                raise _Deny(Reason.PRICE_COLLAR, f"price {price:.6g} is {deviation:.1f} bps from reference "
                            f"{reference:.6g} (collar {cfg.max_price_deviation_bps:g} bps)", "price")
        strategy = None
        if cfg.max_leverage is not None or cfg.max_orders_per_window_per_strategy is not None:
            strategy = _text(signal, "strategy")
        if cfg.max_leverage is not None:
            capital = _num(signal, "capital_usd", minimum=0.0, strict_min=True)
            _text(signal, "symbol")
            exposure = self.state.gross_exposure_usd(strategy) + notional
            leverage = exposure / capital
            if not leverage <= cfg.max_leverage:
                raise _Deny(Reason.LEVERAGE_LIMIT, f"leverage {leverage:.2f}x (exposure {exposure:.0f} USD on "
                            f"{capital:.0f} USD) above {cfg.max_leverage:g}x", "capital_usd")
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
        if cfg.max_rolling_notional_usd is not None:
            _, spent = self.state.orders_since(now - timedelta(seconds=cfg.rolling_notional_window_sec))
            if not spent + notional <= cfg.max_rolling_notional_usd:
                raise _Deny(Reason.ROLLING_NOTIONAL_LIMIT, f"{spent:.0f} USD already placed in the last "
                            f"{cfg.rolling_notional_window_sec:g} s; {notional:.0f} more exceeds "
                            f"{cfg.max_rolling_notional_usd:g}", "notional_usd")
        if cfg.require_approval:
            self._require_approvals(signal, now)

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
