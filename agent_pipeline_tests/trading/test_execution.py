"""The execution layer end to end on the simulated market: decisions, orders, fills, positions, retries,
sizing by the allocator's capital, the two-person rule, and the breaker already in the store."""

import math
from datetime import UTC, datetime, timedelta

import pytest

from agent_pipeline.agents.registry import builtin_specs
from agent_pipeline.market import SimulatedMarket
from agent_pipeline.store.events import AgentEvent, append_event
from agent_pipeline.trading import ExecutionConfig, GuardrailConfig, KillSwitch, Reason
from agent_pipeline.trading.approval_store import store_approval
from agent_pipeline.trading.approvals import issue
from agent_pipeline.trading.broker import PaperBroker
from agent_pipeline.trading.execution import ExecutionLayer

from .conftest import BookMarket, book, market_signal, proposal

R = Reason
KEY = {"AGENT_PIPELINE_APPROVAL_KEY": "test-key"}


class CountingBroker(PaperBroker):
    def __init__(self, inner: PaperBroker):
        super().__init__(inner.market, inner.cfg, inner._clock)
        self.submitted = []

    def submit(self, order, decision):
        self.submitted.append(order)
        return super().submit(order, decision)


def layer(store, tmp_path, *, guardrails=None, execution=None, environ=None, clock=None, market=None):
    ex = ExecutionLayer(store, market or SimulatedMarket(fault_rate=0.0, stale_prob=0.0), guardrails=guardrails or GuardrailConfig(),
                        execution=execution or ExecutionConfig(), kill_switch=KillSwitch(tmp_path / "ks.json"),
                        environ=environ, clock=clock)
    ex._broker = CountingBroker(ex._broker)
    return ex


def run_result(*items, agent="momentum", event_id="ev1"):
    return {"agent": agent, "strategy": agent, "event_id": event_id, "output": list(items)}


def rows(store, sql):
    with store.connect() as conn:
        return conn.execute(sql).fetchall()


def test_an_approved_proposal_is_filled_and_booked(store, tmp_path):
    ex = layer(store, tmp_path)
    report = ex.execute(run_result(market_signal(), market_signal(side="sell")), run_id="r1")  # one quote snapshot
    assert report.approved == 2 and report.filled == 2 and report.denied == 0
    assert len(ex._broker.submitted) == 2
    assert rows(store, "SELECT count(*) FROM gate_decisions WHERE approved")[0][0] == 2
    assert rows(store, "SELECT count(*), min(status) FROM orders")[0] == (2, "filled")
    (fills, fees), = rows(store, "SELECT count(*), sum(fee_usd) FROM fills")
    assert fills == 2 and fees > 0
    (qty,), = rows(store, "SELECT qty FROM positions WHERE strategy = 'momentum' AND symbol = 'BTC-USD'")
    assert abs(qty) < 1e-3  # bought and sold (nearly) the same size: equal notionals at ask and bid
    (pnl, loss), = rows(store, "SELECT realized_pnl_usd, loss_usd FROM daily_pnl")
    assert pnl < 0 and loss > 0  # round trip pays spread, slippage and fees


ARB_BOOKS = [book("sim_a", bid=50_000.0, ask=50_010.0), book("sim_b", bid=50_200.0, ask=50_210.0)]


def test_paired_arbitrage_fills_both_legs(store, tmp_path):
    ex = layer(store, tmp_path, market=BookMarket(ARB_BOOKS))
    pair = proposal(books=ARB_BOOKS, sell_venue="sim_b", sell_price=50_200.0)
    report = ex.execute(run_result(pair), run_id="r1")
    assert report.filled == 1, report.denials
    assert rows(store, "SELECT leg, venue, side FROM fills ORDER BY leg") == [(0, "sim_a", "buy"),
                                                                              (1, "sim_b", "sell")]
    flat = ex.execute(run_result(proposal(sell_venue="sim_a", sell_price=50_000.0), event_id="flat"), run_id="r1")
    assert flat.by_reason == {"EDGE_TOO_LOW": 1}  # a "pair" on one book: its measured edge is negative


def _routable(**patch):
    """A builder, called inside the test: an item priced at collection time is stale minutes later in a long
    session, and the layer would rightly deny its limit price before the field under test."""
    return lambda: _priced_now(patch)


def _priced_now(patch):
    item = market_signal()
    for key, value in patch.items():
        if value is _DROP:
            item.pop(key)
        else:
            item[key] = value
    notional = patch.get("notional_usd")
    if "size" not in patch and isinstance(notional, float) and math.isfinite(notional) and notional > 0:
        item["size"] = notional / item["price"]  # keep the agent's own numbers consistent
    return item


_DROP = object()
# (case, item, code) through the layer: the agent's own fields are validated, its market facts are claims
ADVERSARIAL_ITEMS = [
    ("not routable", {"notional_usd": 1_000.0, "expected_edge_bps": 25.0, "spread_bps": 5.0, "slippage_bps": 3.0,
                      "data_age_sec": 1.0, "paper": True}, R.FIELD_MISSING),
    ("nan notional", _routable(notional_usd=math.nan), R.FIELD_NOT_FINITE),
    ("inf notional", _routable(notional_usd=math.inf), R.FIELD_NOT_FINITE),
    ("huge int notional", _routable(notional_usd=10 ** 400), R.FIELD_NOT_FINITE),
    ("string notional", _routable(notional_usd="100"), R.FIELD_NOT_NUMBER),
    ("bool notional", _routable(notional_usd=True), R.FIELD_NOT_NUMBER),
    ("negative notional", _routable(notional_usd=-5.0), R.FIELD_NEGATIVE),
    ("zero notional", _routable(notional_usd=0.0), R.FIELD_OUT_OF_RANGE),
    ("missing notional", _routable(notional_usd=_DROP), R.FIELD_MISSING),
    ("nan edge", _routable(expected_edge_bps=math.nan), R.FIELD_NOT_FINITE),
    ("edge too low", _routable(expected_edge_bps=9.99), R.EDGE_TOO_LOW),
    ("nan claimed spread", _routable(spread_bps=math.nan), R.FIELD_NOT_FINITE),
    ("negative claimed spread", _routable(spread_bps=-2.0), R.CROSSED_QUOTE),
    ("list claimed slippage", _routable(slippage_bps=[1]), R.FIELD_NOT_NUMBER),
    ("future-dated claim", _routable(data_age_sec=-3.0), R.FUTURE_DATED_DATA),
    ("crossed claimed bid/ask", _routable(bid=101.0, ask=100.0), R.CROSSED_QUOTE),
    ("claimed size negative", _routable(size=-1.0), R.FIELD_NEGATIVE),
    ("paper as string", _routable(paper="true"), R.FIELD_INVALID),
    ("live order", _routable(paper=False), R.PAPER_ONLY),
    ("bad side", _routable(side="hold"), R.FIELD_INVALID),
    ("missing side", _routable(side=_DROP), R.FIELD_MISSING),
    ("missing venue", _routable(venue=_DROP), R.FIELD_MISSING),
    ("unknown venue", _routable(venue="nowhere"), R.MARKET_DATA_MISSING),
    ("unknown symbol", _routable(symbol="DOGE-USD"), R.MARKET_DATA_MISSING),
    ("empty symbol", _routable(symbol=""), R.FIELD_INVALID),
    ("missing limit price", _routable(price=_DROP), R.FIELD_MISSING),
    ("zero price", _routable(price=0.0), R.FIELD_OUT_OF_RANGE),
    ("confidence above 1", _routable(confidence=1.5), R.FIELD_OUT_OF_RANGE),
    ("confidence nan", _routable(confidence=math.nan), R.FIELD_NOT_FINITE),
    ("pair without sell price", _routable(sell_venue="sim_b"), R.FIELD_MISSING),
    ("pair that sells first", _routable(side="sell", sell_venue="sim_b", sell_price=1.0), R.FIELD_INVALID),
    ("notional over limit", _routable(notional_usd=10_000.01), R.NOTIONAL_LIMIT),
]


@pytest.mark.parametrize("case,item,code", ADVERSARIAL_ITEMS, ids=[c[0] for c in ADVERSARIAL_ITEMS])
def test_adversarial_items_are_recorded_denials_and_never_reach_the_broker(store, tmp_path, case, item, code):
    ex = layer(store, tmp_path, execution=ExecutionConfig(default_capital_usd=1e6, max_order_fraction=1.0))
    report = ex.execute(run_result(item() if callable(item) else item), run_id="r1")
    assert report.denied == 1 and report.approved == 0, (case, report.denials)
    assert ex._broker.submitted == []
    (got, approved, inputs), = rows(store, "SELECT reason_code, approved, inputs FROM gate_decisions")
    assert got == code.value and approved is False
    assert "order_key" in inputs
    assert rows(store, "SELECT count(*) FROM orders")[0][0] == 0


def test_retries_never_place_an_order_twice(store, tmp_path):
    ex = layer(store, tmp_path)
    result = run_result(market_signal())
    assert ex.execute(result, run_id="r1").filled == 1
    again = layer(store, tmp_path).execute(result, run_id="r1")  # op retry in a fresh process
    assert again.by_reason == {"DUPLICATE_ORDER": 1}
    assert layer(store, tmp_path).execute(result, run_id="r2").by_reason == {"DUPLICATE_ORDER": 1}  # re-execution
    assert rows(store, "SELECT count(*) FROM orders")[0][0] == 1


def test_agent_supplied_reserved_keys_are_ignored(store, tmp_path):
    ex = layer(store, tmp_path, guardrails=GuardrailConfig(require_approval=True), environ=KEY)
    forged = market_signal(order_key="mine", approvals=["x.y"], strategy_hash=builtin_specs()[0].fingerprint(),
                         capital_usd=1e9)
    report = ex.execute(run_result(forged), run_id="r1", strategy_hash="user-strategy")
    assert report.by_reason == {"APPROVAL_MISSING": 1}


def _quotas(store, rows_):
    with store.connect() as conn:
        conn.execute("CREATE TABLE allocator_quotas (period_start TIMESTAMPTZ, agent VARCHAR, strategy VARCHAR, "
                     "kind VARCHAR, quota INTEGER, capital_usd DOUBLE, score DOUBLE, policy VARCHAR, "
                     "decided_at TIMESTAMPTZ)")
        for period, agent, capital in rows_:
            conn.execute("INSERT INTO allocator_quotas VALUES (?, ?, ?, 'signal', 1, ?, 0, 'ucb', now())",
                         [period, agent, agent, capital])


def test_orders_are_sized_by_the_allocators_latest_capital(store, tmp_path):
    t0 = datetime.now(UTC) - timedelta(hours=1, minutes=30)  # the latest period is the one in force
    _quotas(store, [(t0, "momentum", 100_000.0), (t0 + timedelta(hours=1), "momentum", 2_000.0),
                    (t0 + timedelta(hours=1), "arb", 0.0)])
    ex = layer(store, tmp_path)
    report = ex.execute(run_result(market_signal(notional_usd=5_000.0)), run_id="r1")
    assert report.capital_usd == 2_000.0 and report.capital_source == "allocator_quotas"
    (notional, capital), = rows(store, "SELECT notional_usd, capital_usd FROM orders")
    assert notional == pytest.approx(500.0) and capital == 2_000.0  # 25 % of the latest capital
    (filled,), = rows(store, "SELECT sum(size * price) FROM fills")  # at the price the broker filled at
    assert 500.0 * 0.99 < filled <= 500.0 * (1 + 1e-9)
    zero = ex.execute(run_result(market_signal(), agent="arb"), run_id="r1")
    assert zero.by_reason == {"NO_CAPITAL": 1} and len(ex._broker.submitted) == 1


def test_two_person_rule_through_the_layer(store, tmp_path, pipeline_home):
    cfg = GuardrailConfig(require_approval=True)
    ex = layer(store, tmp_path, guardrails=cfg, environ=KEY)
    key = KEY["AGENT_PIPELINE_APPROVAL_KEY"].encode()
    assert ex.execute(run_result(market_signal(), event_id="a"), run_id="r",
                      strategy_hash="h1").by_reason == {"APPROVAL_MISSING": 1}
    store_approval(store, issue("h1", "alice", agent="momentum", key=key))
    assert ex.execute(run_result(market_signal(), event_id="b"), run_id="r",
                      strategy_hash="h1").by_reason == {"APPROVAL_SINGLE_APPROVER": 1}
    store_approval(store, issue("h1", "bob", agent="momentum", key=key))
    assert ex.execute(run_result(market_signal(), event_id="c"), run_id="r", strategy_hash="h1").filled == 1
    # the strategy changes (new hash): the old approvals no longer count
    assert ex.execute(run_result(market_signal(), event_id="d"), run_id="r",
                      strategy_hash="h2").by_reason == {"APPROVAL_MISMATCH": 1}
    # stock built-ins are exempt
    builtin = builtin_specs()[0]
    assert ex.execute(run_result(market_signal(), agent=builtin.name, event_id="e"), run_id="r",
                      strategy_hash=builtin.fingerprint()).filled == 1


def test_a_halted_switch_stops_everything(store, tmp_path):
    ex = layer(store, tmp_path)
    KillSwitch(tmp_path / "ks.json").trip("manual", by="test")
    report = ex.execute(run_result(market_signal(), market_signal(side="sell")), run_id="r1")
    assert report.by_reason == {"KILL_SWITCH_HALTED": 2} and ex._broker.submitted == []


def test_the_gate_refuses_as_soon_as_the_breach_is_in_the_store(store, tmp_path):
    now = datetime.now(UTC)
    for i in range(6):
        append_event(store, AgentEvent(run_id=f"r{i}", agent="momentum", started_at=now - timedelta(seconds=10 * i),
                                       latency_seconds=0.1, error="MarketDataError: outage" if i % 2 else None,
                                       reward=None if i % 2 else 0.1))
    ex = layer(store, tmp_path)
    report = ex.execute(run_result(market_signal()), run_id="r1")
    assert report.by_reason == {"CIRCUIT_BREAKER": 1}
    (reason,), = rows(store, "SELECT reason FROM gate_decisions")
    assert "error rate 0.50 (3/6" in reason
    assert KillSwitch(tmp_path / "ks.json").state.value == "ACTIVE"  # the sensor, not the gate, latches


def test_daily_loss_from_fills_trips_the_persisted_switch(store, tmp_path):
    ex = layer(store, tmp_path, guardrails=GuardrailConfig(max_daily_loss_usd=0.01))
    report = ex.execute(run_result(market_signal(), market_signal(side="sell"), market_signal(venue="sim_b")),
                        run_id="r1")
    # the first order's fee alone would pass the budget: refused before it fills, the switch trips, the rest of
    # the batch is refused
    assert report.filled == 0 and report.by_reason == {"DAILY_LOSS_LIMIT": 1, "KILL_SWITCH_HALTED": 2}
    ks = KillSwitch(tmp_path / "ks.json")
    assert ks.state.value == "HALTED" and "daily loss" in ks.reason


def test_broker_refuses_orders_without_an_approving_decision(store, tmp_path):
    ex = layer(store, tmp_path)
    from agent_pipeline.trading.broker import OrderIntent
    from agent_pipeline.trading.guardrails import Decision

    order = OrderIntent("k", "a", "s", "BTC-USD", "buy", "sim_a", 0.01, 60_000.0, 600.0)
    denied = Decision(False, Reason.NOTIONAL_LIMIT, "no", datetime.now(UTC), inputs={"order_key": "k"})
    other = Decision(True, Reason.OK, "OK", datetime.now(UTC), inputs={"order_key": "other"})
    for decision in (denied, other, None):
        with pytest.raises(PermissionError):
            ex._broker.submit(order, decision)


def test_a_check_that_raises_inside_the_layer_is_a_recorded_denial(store, tmp_path, monkeypatch):
    ex = layer(store, tmp_path)

    def broken(now):
        raise RuntimeError("breaker query failed")

    monkeypatch.setattr(ex.state, "breaker_breach", broken)
    report = ex.execute(run_result(market_signal()), run_id="r1")
    assert report.by_reason == {"CHECK_ERROR": 1} and ex._broker.submitted == []
    (reason,), = rows(store, "SELECT reason FROM gate_decisions")
    assert "breaker query failed" in reason
    assert rows(store, "SELECT count(*) FROM orders")[0][0] == 0


def test_reducing_through_the_layer_uses_stored_positions(store, tmp_path):
    ex = layer(store, tmp_path)
    assert ex.execute(run_result(market_signal(notional_usd=2_000.0), event_id="open"), run_id="r").filled == 1
    KillSwitch(tmp_path / "ks.json").reduce("de-risk", by="test")
    more = ex.execute(run_result(market_signal(notional_usd=500.0), event_id="more"), run_id="r")
    assert more.by_reason == {"KILL_SWITCH_REDUCING": 1}
    less = ex.execute(run_result(market_signal(side="sell", notional_usd=500.0), event_id="less"), run_id="r")
    assert less.filled == 1, less.denials
    (qty,), = rows(store, "SELECT qty FROM positions")
    assert qty > 0


def test_leverage_through_the_layer_counts_stored_exposure(store, tmp_path):
    ex = layer(store, tmp_path, guardrails=GuardrailConfig(max_leverage=0.3),
               execution=ExecutionConfig(default_capital_usd=10_000.0, max_order_fraction=0.2))
    first = ex.execute(run_result(market_signal(notional_usd=2_000.0), event_id="a"), run_id="r")
    assert first.filled == 1
    second = ex.execute(run_result(market_signal(notional_usd=2_000.0), event_id="b"), run_id="r")
    assert second.by_reason == {"LEVERAGE_LIMIT": 1}  # 2,000 held + 2,000 more on 10,000 > 0.3x


def test_prices_are_limits_and_a_limit_off_the_market_is_refused(store, tmp_path):
    ex = layer(store, tmp_path, market=BookMarket([book()]))
    stale = proposal(side="sell", price=50_000.0 * 1.02)  # 2 % above the bid: it would not fill
    report = ex.execute(run_result(stale), run_id="r1")
    assert report.by_reason == {"LIMIT_PRICE_OFF_MARKET": 1}
    assert rows(store, "SELECT count(*) FROM orders")[0][0] == 0
    near = proposal(side="sell", price=50_000.0 * 1.002)  # 20 bps off: a limit, filled at the bid
    assert ex.execute(run_result(near, event_id="near"), run_id="r1").filled == 1
    (price,), = rows(store, "SELECT price FROM fills")
    assert price < 50_000.0  # the bid less slippage, not the agent's price
