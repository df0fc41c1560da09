"""Property tests: no input makes ``check`` raise, and nothing non-finite is ever approved."""

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_pipeline.trading import GuardrailConfig, KillSwitch, TradeGuardrails

from .conftest import full_signal

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
    layer = ExecutionLayer(store, SimulatedMarket(fault_rate=0.0), kill_switch=KillSwitch(tmp / "ks.json"))
    report = layer.execute({"agent": "prop", "event_id": "e", "output": items}, run_id="r")
    assert report.approved + report.denied == report.proposals
    if not report.proposals:
        return  # nothing proposed a trade: nothing recorded
    with store.connect() as conn:
        decisions = conn.execute("SELECT count(*) FROM gate_decisions").fetchone()[0]
        bad = conn.execute("SELECT count(*) FROM orders WHERE NOT (isfinite(notional_usd) AND notional_usd > 0) "
                           "OR (size IS NOT NULL AND NOT isfinite(size))").fetchone()[0]
    assert decisions == report.proposals and bad == 0
