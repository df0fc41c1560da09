"""Property tests over hostile agent outputs (issue 9, beyond the listed cases): text that lies about itself,
text the store cannot encode, keys that are not text, identities claimed in the output, numbers of every type and
a book with prior losses. Whatever the output, the layer never raises, every proposal is one recorded decision,
every booked order carries plain text, a real side and the registered strategy, and the day's realised loss never
passes the limit."""

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_pipeline.trading import GuardrailConfig, KillSwitch, trading_date
from agent_pipeline.trading import tables as trading_tables

from .conftest import NOW, Always, BookMarket, Clock, book, proposal

BOOKS = [book("sim_a", bid=50_000.0, ask=50_010.0, bid_size=50.0, ask_size=50.0),
         book("sim_b", bid=50_100.0, ask=50_110.0, bid_size=50.0, ask_size=50.0)]
LIMIT = 50.0


class Liar(str):
    def __str__(self):
        return "sell"

    def lower(self):
        return "buy"

    def strip(self, *args):
        return "x"


def texts(base):
    return st.sampled_from([base, Always(base), Always("hold"), Liar(base), base + "\ud800", "\udfff", "",
                            Always(""), base.upper()])


numbers = st.sampled_from([1_000.0, np.float64(1_000.0), np.int64(1_000), 10 ** 30, math.nan, True, np.bool_(True),
                           "1000", -1_000.0, 0])


@st.composite
def hostile_item(draw):
    item = proposal(notional=draw(st.sampled_from([500.0, 1_000.0, 2_000.0])), books=BOOKS,
                    side=draw(st.sampled_from(["buy", "sell"])))
    for key in ("side", "symbol", "venue"):
        if draw(st.booleans()):
            item[key] = draw(texts(item[key]))
    if draw(st.booleans()):
        item["notional_usd"] = draw(numbers)
    if draw(st.booleans()):
        item[draw(st.sampled_from(["strategy", "agent", "order_key", "capital_usd", "approvals", "strategy_hash"]))] \
            = draw(st.sampled_from(["cross_venue_arb", Always("momentum"), 1e12, ["forged.token"]]))
    if draw(st.booleans()):
        item[draw(st.sampled_from([1, None, ("t",), "\ud800key"]))] = "odd key"
    if draw(st.integers(0, 3)) == 0:
        item.update(side="buy", sell_venue=draw(texts("sim_b")), sell_price=50_100.0)
    return item


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(items=st.lists(hostile_item(), min_size=1, max_size=6), loss_today=st.sampled_from([0.0, 30.0, 49.0]),
       held=st.sampled_from([0.0, 0.5, -0.5]))
def test_hostile_outputs_never_raise_are_all_recorded_and_book_only_plain_orders(items, loss_today, held,
                                                                                 tmp_path_factory):
    from agent_pipeline.store import Store
    from agent_pipeline.trading.execution import ExecutionLayer

    tmp = tmp_path_factory.mktemp("hostile")
    store = Store(tmp / "db.duckdb")
    with store.transaction(schema=trading_tables.TRADING) as conn:
        trading_tables.add_daily_pnl(conn, trading_date(NOW), -loss_today, NOW)
        if held:
            conn.execute("INSERT INTO positions VALUES ('registered', 'BTC-USD', ?, 55000, 0, 0, ?)", [held, NOW])
    layer = ExecutionLayer(store, BookMarket(BOOKS), guardrails=GuardrailConfig(max_daily_loss_usd=LIMIT),
                           kill_switch=KillSwitch(tmp / "ks.json", key=b""), clock=Clock())
    report = layer.execute({"agent": "prop", "strategy": "cross_venue_arb", "event_id": "e", "output": items},
                           run_id="r", agent="prop", strategy="registered")
    assert report.approved + report.denied == report.proposals == len(items)
    with store.connect() as conn:
        decisions = conn.execute("SELECT count(*), count(DISTINCT strategy) FROM gate_decisions").fetchone()
        orders = conn.execute("SELECT symbol, side, venue, sell_venue, strategy, agent FROM orders").fetchall()
        (loss,), = conn.execute("SELECT loss_usd FROM daily_pnl").fetchall()
    assert decisions == (len(items), 1)
    for symbol, side, venue, sell_venue, strategy, agent in orders:
        assert (symbol, strategy, agent) == ("BTC-USD", "registered", "prop")
        assert side in ("buy", "sell") and venue in ("sim_a", "sim_b") and sell_venue in (None, "sim_b")
        assert all(type(v) is str for v in (symbol, side, venue))
    assert loss <= LIMIT + 1e-9
