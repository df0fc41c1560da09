"""Property tests: no input makes ``check`` raise, nothing non-finite is ever approved, and random agent outputs
against random books never fill more than the checked notional, never fill against a stale, crossed or empty book
and never take exposure past the configured caps."""

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_pipeline.trading import GuardrailConfig, KillSwitch, TradeGuardrails

from .conftest import BookMarket, Clock, book, full_signal

NUMERIC_KEYS = ("notional_usd", "expected_edge_bps", "spread_bps", "slippage_bps", "data_age_sec", "confidence",
                "size", "quote_size", "price", "reference_price", "capital_usd")

anything = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-10 ** 400, max_value=10 ** 400),
    st.booleans(), st.none(), st.text(max_size=5), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
signals = st.dictionaries(st.sampled_from(NUMERIC_KEYS + ("paper", "side", "strategy", "symbol", "order_key", "bid",
                                                          "ask")), anything, max_size=16)
mutated = st.builds(lambda base, patch: {**base, **patch}, st.just(full_signal(strategy="s", capital_usd=10_000.0)),
                    signals)

CONFIGS = [GuardrailConfig(),
           GuardrailConfig(min_confidence=0.1, max_quote_fraction=1.0, max_price_deviation_bps=500, max_leverage=5,
                           max_orders_per_window=1000, max_orders_per_window_per_strategy=1000,
                           max_rolling_notional_usd=1e9)]


def _finite_numbers(signal):
    for key in NUMERIC_KEYS:
        if key in signal:
            value = signal[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return False
            try:
                if not math.isfinite(float(value)):
                    return False
            except OverflowError:
                return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signal=st.one_of(signals, mutated, anything), which=st.sampled_from([0, 1]))
def test_check_never_raises_and_never_approves_non_finite(signal, which):
    gate = TradeGuardrails(CONFIGS[which], KillSwitch())
    decision = gate.check(signal)
    ok, reason = decision
    assert isinstance(ok, bool) and isinstance(reason, str) and decision.code.value
    if ok:
        assert _finite_numbers(signal)
        assert signal["paper"] is True


@settings(max_examples=150, deadline=None)
@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3), st.booleans(), st.none()),
       key=st.sampled_from(NUMERIC_KEYS[:5]))
def test_any_non_finite_or_non_numeric_seed_field_is_denied(value, key):
    signal = full_signal()
    signal[key] = value
    decision = TradeGuardrails(GuardrailConfig(), KillSwitch()).check(signal)
    if isinstance(value, float) and math.isfinite(value):
        return  # a finite number may pass or fail on its limit
    assert not decision.ok


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.one_of(mutated, signals), min_size=1, max_size=3))
def test_the_execution_layer_never_raises_and_books_only_finite_orders(items, tmp_path_factory):
    from agent_pipeline.market import SimulatedMarket
    from agent_pipeline.store import Store
    from agent_pipeline.trading.execution import ExecutionLayer

    tmp = tmp_path_factory.mktemp("layer")
    store = Store(tmp / "db.duckdb")
    layer = ExecutionLayer(store, SimulatedMarket(fault_rate=0.0, stale_prob=0.0), kill_switch=KillSwitch(tmp / "ks.json"))
    report = layer.execute({"agent": "prop", "event_id": "e", "output": items}, run_id="r")
    assert report.approved + report.denied == report.proposals
    if not report.proposals:
        return  # nothing proposed a trade: nothing recorded
    with store.connect() as conn:
        decisions = conn.execute("SELECT count(*) FROM gate_decisions").fetchone()[0]
        bad = conn.execute("SELECT count(*) FROM orders WHERE NOT (isfinite(notional_usd) AND notional_usd > 0) "
                           "OR (size IS NOT NULL AND NOT isfinite(size))").fetchone()[0]
    assert decisions == report.proposals and bad == 0


# -- random agent outputs against random books, through the execution layer -----------------------------------
VENUES = ("v1", "v2", "v3")
CAPITAL = 10_000.0  # ExecutionConfig's default capital: no allocator has decided in these stores
CAPS = GuardrailConfig(max_orders_per_run=4, max_leverage=0.6, max_strategy_turnover=1.5, max_spread_bps=300.0,
                       max_slippage_bps=300.0, min_expected_edge_bps=-1_000.0, max_limit_distance_bps=500.0,
                       max_daily_loss_usd=1e9)
odd_number = st.sampled_from([math.nan, math.inf, 0.0, -1.0])


@st.composite
def random_book(draw, venue):
    mid = draw(st.floats(10.0, 100_000.0))
    spread_bps = draw(st.one_of(st.floats(-30.0, 300.0), st.just(0.0)))  # negative: a crossed book
    bid, ask = mid * (1 - spread_bps / 20_000.0), mid * (1 + spread_bps / 20_000.0)
    if draw(st.integers(0, 9)) == 0:
        bid = draw(odd_number)
    if draw(st.integers(0, 9)) == 0:
        ask = draw(odd_number)
    size = st.one_of(st.sampled_from([0.0, 1e-4, 0.05, 1.0, 50.0, math.nan, -1.0]), st.floats(1e-3, 100.0))
    age = st.one_of(st.floats(0.0, 29.9), st.floats(30.1, 500.0), st.floats(-50.0, -0.01))
    return book(venue, "BTC-USD", bid, ask, draw(size), draw(size), draw(age))


def usable(b):
    """What the broker may fill against at decision time (the fixed clock): a sane, fresh, non-empty book."""
    nums = (b["bid"], b["ask"], b["bid_size"], b["ask_size"])
    return (all(math.isfinite(x) for x in nums) and 0 < b["bid"] <= b["ask"] and b["bid_size"] > 0
            and b["ask_size"] > 0 and 0 <= b["age"] <= CAPS.max_staleness_sec)


@st.composite
def agent_item(draw, books):
    by_venue = {b["venue"]: b for b in books}
    venue = draw(st.sampled_from(VENUES + ("nowhere",)))
    side = draw(st.sampled_from(["buy", "sell"]))
    quoted = by_venue.get(venue)
    touch = quoted["ask" if side == "buy" else "bid"] if quoted else 1_000.0
    touch = touch if math.isfinite(touch) and touch > 0 else 1_000.0
    limit = touch * draw(st.sampled_from([1.0, 0.999, 1.003, 0.001, 1_000.0, 0.9, 1.0]))
    notional = draw(st.one_of(st.floats(1.0, 50_000.0), st.integers(1, 50_000).map(np.int64),
                              st.floats(1.0, 50_000.0).map(np.float32)))
    item = {"symbol": "BTC-USD", "side": side, "venue": venue, "price": limit, "notional_usd": notional,
            "size": float(notional) / limit * draw(st.sampled_from([1.0, 1.0, 3.8, 0.2])),
            "expected_edge_bps": draw(st.floats(-50.0, 500.0)), "paper": True}
    for key in ("spread_bps", "slippage_bps", "data_age_sec", "quote_size", "reference_price"):
        if draw(st.booleans()):
            item[key] = draw(st.one_of(st.floats(0.0, 1e5), st.just(math.nan)))
    if draw(st.integers(0, 3)) == 0:
        other = draw(st.sampled_from(VENUES))
        sell_touch = by_venue[other]["bid"] if other in by_venue else 1_000.0
        item.update(side="buy", sell_venue=other, sell_price=sell_touch if math.isfinite(sell_touch) else 1_000.0)
    return item


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_outputs_on_random_books_never_breach_the_notional_the_book_or_the_caps(data, tmp_path_factory):
    from agent_pipeline.store import Store
    from agent_pipeline.trading.execution import ExecutionLayer
    from agent_pipeline.trading.market_facts import FILL_NOTIONAL_TOLERANCE

    books = [data.draw(random_book(v), label=v) for v in VENUES if data.draw(st.integers(0, 5), label="has") > 0]
    items = data.draw(st.lists(agent_item(books), min_size=1, max_size=8), label="items")
    tmp = tmp_path_factory.mktemp("props")
    store = Store(tmp / "db.duckdb")
    layer = ExecutionLayer(store, BookMarket(books), guardrails=CAPS, kill_switch=KillSwitch(tmp / "ks.json"),
                           clock=Clock())
    report = layer.execute({"agent": "prop", "event_id": "e", "output": items}, run_id="r")
    assert report.approved + report.denied == report.proposals == len(items)
    by_venue = {b["venue"]: b for b in books}
    with store.connect() as conn:
        legs = conn.execute("SELECT o.notional_usd, f.venue, f.size * f.price FROM fills f "
                            "JOIN orders o USING (order_id)").fetchall()
        orders, placed = conn.execute("SELECT count(*), coalesce(sum(notional_usd), 0) FROM orders").fetchone()
        (exposure,), = conn.execute("SELECT coalesce(sum(abs(qty) * avg_price), 0) FROM positions").fetchall()
        decisions = conn.execute("SELECT count(*) FROM gate_decisions").fetchone()[0]
    assert decisions == len(items)
    for notional, venue, filled in legs:
        assert filled <= notional * (1 + FILL_NOTIONAL_TOLERANCE)  # the filled notional, every leg
        assert notional <= CAPITAL * 0.25 * (1 + 1e-12)             # sized by the capital, never the agent
        assert usable(by_venue[venue]), by_venue[venue]             # never a stale, crossed or empty book
    assert orders <= CAPS.max_orders_per_run
    assert placed <= CAPS.max_strategy_turnover * CAPITAL * (1 + 1e-9)
    assert exposure <= CAPS.max_leverage * CAPITAL * (1 + 1e-9)


@settings(max_examples=400, deadline=None)
@given(notional=st.floats(1e-3, 1e7), legs=st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.floats(1e-3, 1e6),
                                                              st.floats(1e-6, 1e4)), min_size=1, max_size=2),
       base=st.floats(0.0, 50.0), impact=st.floats(0.0, 500.0))
def test_sizing_from_the_book_fills_the_notional_and_never_more(notional, legs, base, impact):
    from datetime import UTC, datetime

    from agent_pipeline.trading import ExecutionConfig
    from agent_pipeline.trading.market_facts import (
        FILL_NOTIONAL_TOLERANCE,
        LegFacts,
        fill_price,
        impact_slippage_bps,
        size_for_notional,
    )

    cfg = ExecutionConfig(base_slippage_bps=base, impact_bps_per_quote=impact)
    at = datetime(2026, 3, 2, tzinfo=UTC)
    facts = [LegFacts("v", "S", side, touch, touch, depth, depth, at, 0.0, at, touch, depth, 0.0)
             for side, touch, depth in legs]
    size = size_for_notional(notional, facts, cfg)
    fills = [size * fill_price(leg.touch_price, leg.side, impact_slippage_bps(size, leg.touch_size, cfg))
             for leg in facts]
    assert size > 0 and all(f <= notional * (1 + FILL_NOTIONAL_TOLERANCE) for f in fills)
    # not sized short: the binding leg uses the whole notional (a buy at its fill price, a sell at its bid,
    # since a sell fills below the bid)
    bounds = [f if leg.side == "buy" else size * leg.touch_price for f, leg in zip(fills, facts, strict=True)]
    assert max(bounds) >= notional * (1 - 1e-6)
