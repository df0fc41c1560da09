"""The gate: the prototype's contract, fail-closed field handling, and each configured check."""

import math
from datetime import timedelta

import numpy as np
import pytest

from agent_pipeline.trading import GuardrailConfig, KillSwitch, MemoryGateState, Reason, TradeGuardrails

from .conftest import full_signal, prototype_signal

R = Reason


def gate(cfg=None, **kwargs):
    return TradeGuardrails(cfg or GuardrailConfig(), kwargs.pop("kill", KillSwitch()), **kwargs)


def test_default_config_approves_exactly_the_prototype_keys():
    ok, reason = gate().check(prototype_signal())
    assert ok and reason == "OK"
    decision = gate().check(prototype_signal())
    assert decision.code is R.OK and decision.reason_code == "OK"


def test_numpy_numbers_are_numbers():
    assert gate().check(prototype_signal(notional_usd=np.float64(100.0), data_age_sec=np.int64(2))).ok


# (case, signal, expected code) -- each must be denied with exactly that code
ADVERSARIAL = [
    ("not a mapping", ["notional_usd", 1], R.SIGNAL_INVALID),
    ("none", None, R.SIGNAL_INVALID),
    ("empty", {}, R.FIELD_MISSING),
    *[(f"missing {k}", {kk: v for kk, v in prototype_signal().items() if kk != k}, R.FIELD_MISSING)
      for k in prototype_signal()],
    ("nan notional", prototype_signal(notional_usd=math.nan), R.FIELD_NOT_FINITE),
    ("inf notional", prototype_signal(notional_usd=math.inf), R.FIELD_NOT_FINITE),
    ("-inf edge", prototype_signal(expected_edge_bps=-math.inf), R.FIELD_NOT_FINITE),
    ("nan edge", prototype_signal(expected_edge_bps=math.nan), R.FIELD_NOT_FINITE),
    ("nan spread", prototype_signal(spread_bps=math.nan), R.FIELD_NOT_FINITE),
    ("nan slippage", prototype_signal(slippage_bps=math.nan), R.FIELD_NOT_FINITE),
    ("nan age", prototype_signal(data_age_sec=math.nan), R.FIELD_NOT_FINITE),
    ("inf age", prototype_signal(data_age_sec=math.inf), R.FIELD_NOT_FINITE),
    ("huge int", prototype_signal(notional_usd=10 ** 400), R.FIELD_NOT_FINITE),
    ("string notional", prototype_signal(notional_usd="100"), R.FIELD_NOT_NUMBER),
    ("string edge", prototype_signal(expected_edge_bps="50"), R.FIELD_NOT_NUMBER),
    ("bool notional", prototype_signal(notional_usd=True), R.FIELD_NOT_NUMBER),
    ("bool age", prototype_signal(data_age_sec=False), R.FIELD_NOT_NUMBER),
    ("none slippage", prototype_signal(slippage_bps=None), R.FIELD_NOT_NUMBER),
    ("list spread", prototype_signal(spread_bps=[1]), R.FIELD_NOT_NUMBER),
    ("negative notional", prototype_signal(notional_usd=-5.0), R.FIELD_NEGATIVE),
    ("zero notional", prototype_signal(notional_usd=0.0), R.FIELD_OUT_OF_RANGE),
    ("negative slippage", prototype_signal(slippage_bps=-1.0), R.FIELD_NEGATIVE),
    ("negative spread = crossed", prototype_signal(spread_bps=-2.0), R.CROSSED_QUOTE),
    ("crossed bid/ask", prototype_signal(bid=101.0, ask=100.0), R.CROSSED_QUOTE),
    ("bid without ask", prototype_signal(bid=101.0), R.FIELD_MISSING),
    ("future-dated data", prototype_signal(data_age_sec=-3.0), R.FUTURE_DATED_DATA),
    ("stale data", prototype_signal(data_age_sec=31.0), R.STALE_DATA),
    ("paper as string", prototype_signal(paper="true"), R.FIELD_INVALID),
    ("paper as 1", prototype_signal(paper=1), R.FIELD_INVALID),
    ("live order", prototype_signal(paper=False), R.PAPER_ONLY),
    ("bad side", prototype_signal(side="hold"), R.FIELD_INVALID),
    ("notional over limit", prototype_signal(notional_usd=10_000.01), R.NOTIONAL_LIMIT),
    ("edge too low", prototype_signal(expected_edge_bps=9.99), R.EDGE_TOO_LOW),
    ("negative edge", prototype_signal(expected_edge_bps=-50.0), R.EDGE_TOO_LOW),
    ("spread too wide", prototype_signal(spread_bps=15.5), R.SPREAD_TOO_WIDE),
    ("slippage too high", prototype_signal(slippage_bps=25.0), R.SLIPPAGE_TOO_HIGH),
    ("empty order key", prototype_signal(order_key=""), R.FIELD_INVALID),
    ("confidence above 1", prototype_signal(confidence=1.5), R.FIELD_OUT_OF_RANGE),
    ("confidence nan", prototype_signal(confidence=math.nan), R.FIELD_NOT_FINITE),
    ("confidence as string", prototype_signal(confidence="high"), R.FIELD_NOT_NUMBER),
    ("negative size", prototype_signal(size=-1.0), R.FIELD_NEGATIVE),
    ("zero price", prototype_signal(price=0.0), R.FIELD_OUT_OF_RANGE),
    ("inf reference price", prototype_signal(reference_price=math.inf), R.FIELD_NOT_FINITE),
    ("empty symbol", prototype_signal(symbol=""), R.FIELD_INVALID),
]


@pytest.mark.parametrize("case,signal,code", ADVERSARIAL, ids=[c[0] for c in ADVERSARIAL])
def test_adversarial_inputs_are_denied_with_their_code(case, signal, code):
    decision = gate().check(signal)
    ok, reason = decision
    assert not ok, case
    assert decision.code is code, (case, decision)
    assert reason and reason != "OK"


CONFIGURED = GuardrailConfig(min_confidence=0.5, max_quote_fraction=0.5, max_price_deviation_bps=50,
                             max_leverage=2.0)

# each check beyond the prototype's: once configured, its fields are required and validated
CONFIGURED_CASES = [
    ("confidence missing", {"confidence": None}, R.FIELD_MISSING),
    ("confidence above 1", {"confidence": 1.5}, R.FIELD_OUT_OF_RANGE),
    ("confidence negative", {"confidence": -0.1}, R.FIELD_NEGATIVE),
    ("confidence nan", {"confidence": math.nan}, R.FIELD_NOT_FINITE),
    ("confidence low", {"confidence": 0.3}, R.CONFIDENCE_TOO_LOW),
    ("size missing", {"size": None}, R.FIELD_MISSING),
    ("quote size zero", {"quote_size": 0.0}, R.LIQUIDITY),
    ("quote size negative", {"quote_size": -1.0}, R.FIELD_NEGATIVE),
    ("size beyond the book", {"quote_size": 0.02}, R.LIQUIDITY),
    ("reference missing", {"reference_price": None}, R.FIELD_MISSING),
    ("price zero", {"price": 0.0}, R.FIELD_OUT_OF_RANGE),
    ("price outside collar", {"price": 60_400.0}, R.PRICE_COLLAR),
    ("reference inf", {"reference_price": math.inf}, R.FIELD_NOT_FINITE),
    ("capital missing", {"capital_usd": None}, R.FIELD_MISSING),
    ("strategy missing", {"strategy": None}, R.FIELD_MISSING),
    ("leverage", {"capital_usd": 400.0}, R.LEVERAGE_LIMIT),
]


@pytest.mark.parametrize("case,change,code", CONFIGURED_CASES, ids=[c[0] for c in CONFIGURED_CASES])
def test_configured_checks_require_their_fields(case, change, code):
    signal = full_signal(strategy="s", capital_usd=10_000.0)
    for key, value in change.items():
        if value is None:
            signal.pop(key)
        else:
            signal[key] = value
    assert gate(CONFIGURED).check(signal).ok is False
    assert gate(CONFIGURED).check(signal).code is code
    assert gate(CONFIGURED).check(full_signal(strategy="s", capital_usd=10_000.0)).ok


def test_a_check_that_raises_is_a_denial():
    class Broken(MemoryGateState):
        def daily_loss_usd(self, day):
            raise RuntimeError("books on fire")

    decision = gate(state=Broken()).check(prototype_signal())
    assert not decision.ok and decision.code is R.CHECK_ERROR and "books on fire" in decision.reason

    class Hostile(dict):
        def __getitem__(self, key):
            raise KeyError("gotcha")

    assert gate().check(Hostile(prototype_signal())).code is R.CHECK_ERROR


def test_rate_limits_and_rolling_notional(clock):
    cfg = GuardrailConfig(max_orders_per_window=3, max_orders_per_window_per_strategy=2, rate_window_sec=60,
                          max_rolling_notional_usd=5_000, rolling_notional_window_sec=3_600)
    g = gate(cfg, clock=clock)

    def place(strategy, notional=1_000.0):
        s = prototype_signal(strategy=strategy, notional_usd=notional)
        d = g.check(s)
        g.record_order(s, d)
        return d

    assert place("a").ok and place("a").ok
    assert place("a").code is R.STRATEGY_RATE_LIMIT
    assert place("b").ok
    assert place("b").code is R.GLOBAL_RATE_LIMIT
    clock.now += timedelta(seconds=61)  # the rate window has passed, the notional window has not
    assert place("c", 1_000.0).ok  # 4,000 placed
    d = place("c", 1_000.01)
    assert d.code is R.ROLLING_NOTIONAL_LIMIT, d
    many_small = [place(f"s{i}", 100.0) for i in range(20)]
    assert sum(x.ok for x in many_small) <= 10  # small orders cannot add up past the cap
    clock.now += timedelta(hours=1, seconds=1)
    assert place("d").ok


def test_duplicate_order_keys_are_refused():
    g = gate()
    s = prototype_signal(order_key="k1")
    d = g.check(s)
    g.record_order(s, d)
    assert g.check(s).code is R.DUPLICATE_ORDER
    assert gate(GuardrailConfig(require_order_key=True)).check(prototype_signal()).code is R.FIELD_MISSING


def test_kill_switch_and_trip_on_serious_denials():
    kill = KillSwitch()
    g = gate(GuardrailConfig(trip_on=("PRICE_COLLAR",), max_price_deviation_bps=10), kill=kill)
    assert g.check(full_signal()).ok  # 60,000 against 60,010 is 1.7 bps, inside the 10 bps collar
    d = g.check(full_signal(reference_price=70_000.0))
    assert d.code is R.PRICE_COLLAR and d.tripped and kill.enabled
    assert g.check(full_signal(price=60_010.0)).code is R.KILL_SWITCH_HALTED


def test_daily_loss_breach_trips_and_denies(clock):
    kill = KillSwitch()
    g = gate(kill=kill, clock=clock)
    g.record_pnl(300.0)   # gains do not offset losses (the prototype's rule)
    g.record_pnl(-499.0)
    assert g.check(prototype_signal()).ok and not kill.enabled
    g.record_pnl(-2.0)
    assert kill.enabled and "daily loss" in kill.reason
    kill.clear()
    d = g.check(prototype_signal())
    assert d.code is R.DAILY_LOSS_LIMIT and kill.enabled


@pytest.mark.parametrize("bad", [math.nan, math.inf, "5", None, True])
def test_record_pnl_rejects_non_finite_and_halts(bad):
    kill = KillSwitch()
    with pytest.raises(ValueError):
        gate(kill=kill).record_pnl(bad)
    assert kill.enabled


def test_reducing_allows_only_position_reducing_orders():
    kill = KillSwitch()
    state = MemoryGateState()
    state.set_position("s", "BTC-USD", 0.05, 60_000.0)
    g = gate(kill=kill, state=state)
    kill.reduce("de-risk")

    def order(side, size):
        return full_signal(strategy="s", side=side, size=size, notional_usd=size * 60_000.0)

    sell = order("sell", 0.02)
    assert g.check(sell).ok
    assert g.check(order("buy", 0.02)).code is R.KILL_SWITCH_REDUCING
    assert g.check(order("sell", 0.06)).code is R.KILL_SWITCH_REDUCING
    assert g.check(prototype_signal()).code is R.FIELD_MISSING  # reduce-only needs strategy, symbol, side, size
    kill.trip("now halt")
    assert g.check(sell).code is R.KILL_SWITCH_HALTED


def test_breaker_breach_in_state_denies():
    state = MemoryGateState()
    state.set_breach("error rate 0.50")
    d = gate(state=state).check(prototype_signal())
    assert d.code is R.CIRCUIT_BREAKER and "0.50" in d.reason
    assert gate(GuardrailConfig(breaker_in_gate=False), state=state).check(prototype_signal()).ok
