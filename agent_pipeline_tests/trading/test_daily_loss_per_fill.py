"""Hidden case 7 of issue 9: the daily loss limit holds fill by fill, not only order by order.

The gate used to compare only what had already been realised today with the limit, so one order whose fills
realise a large loss (a sell closing a long bought higher, the fees of each leg) passed at 400 of 500 USD and
ended the day at 600. The measured gate now predicts every leg's realised PnL at the measured fill price and fee
with the ledger's own accounting and refuses the order when today's loss plus those fills' losses would pass
the limit; the ledger then books each fill's loss on its own (a gain on one leg does not hide a loss on another).
"""

from datetime import UTC, datetime

from agent_pipeline.trading import GuardrailConfig, KillSwitch, trading_date
from agent_pipeline.trading import tables as trading_tables
from agent_pipeline.trading.execution import ExecutionLayer

from .conftest import NOW, BookMarket, Clock, book, proposal

DEEP = book(bid=50_000.0, ask=50_010.0, bid_size=100.0, ask_size=100.0)
SECOND = book("sim_b", bid=50_200.0, ask=50_210.0, bid_size=100.0, ask_size=100.0)


def layer(store, tmp_path, books=(DEEP,)):
    return ExecutionLayer(store, BookMarket(list(books)), guardrails=GuardrailConfig(max_leverage=100.0),
                          kill_switch=KillSwitch(tmp_path / "ks.json", key=b""), clock=Clock())


def hold(store, strategy, qty, avg_price, loss_today):
    with store.transaction(schema=trading_tables.TRADING) as conn:
        conn.execute("INSERT INTO positions VALUES (?, 'BTC-USD', ?, ?, 0, 0, ?)",
                     [strategy, qty, avg_price, datetime.now(UTC)])
        trading_tables.add_daily_pnl(conn, trading_date(NOW), -loss_today, NOW)


def query(store, sql):
    with store.connect() as conn:
        return conn.execute(sql).fetchall()


def test_a_sell_whose_fill_would_realise_past_the_limit_is_refused_before_it_fills(store, tmp_path):
    hold(store, "a", 1.0, 60_000.0, loss_today=400.0)  # selling 0.02 at ~50,000 realises about -200
    ex = layer(store, tmp_path)
    report = ex.execute({"agent": "a", "event_id": "ev1", "output": [proposal(side="sell", notional=1_000.0,
                                                                               books=[DEEP])]}, run_id="r1")
    assert report.by_reason == {"DAILY_LOSS_LIMIT": 1}, report.denials
    assert query(store, "SELECT count(*) FROM fills") == [(0,)]
    (loss,), = query(store, "SELECT loss_usd FROM daily_pnl")
    assert loss == 400.0
    reason = report.denials[0][2]
    assert "would realise" in reason and "400" in reason


def test_an_order_within_the_budget_still_fills_and_its_loss_is_booked(store, tmp_path):
    hold(store, "a", 1.0, 50_100.0, loss_today=400.0)  # selling 0.02 realises about -2 plus the fee
    ex = layer(store, tmp_path)
    report = ex.execute({"agent": "a", "event_id": "ev1", "output": [proposal(side="sell", notional=1_000.0,
                                                                               books=[DEEP])]}, run_id="r1")
    assert report.filled == 1, report.denials
    (loss,), = query(store, "SELECT loss_usd FROM daily_pnl")
    assert 400.0 < loss < 500.0


def test_each_fill_of_a_pair_counts_its_own_loss(store, tmp_path):
    ex = layer(store, tmp_path, books=(DEEP, SECOND))
    pair = proposal(notional=1_000.0, books=[DEEP], sell_venue="sim_b", sell_price=50_200.0,
                    expected_edge_bps=25.0)
    report = ex.execute({"agent": "a", "event_id": "ev1", "output": [pair]}, run_id="r1")
    assert report.filled == 1, report.denials
    legs = query(store, "SELECT realized_pnl_usd FROM fills ORDER BY leg")
    (loss, fills), = query(store, "SELECT loss_usd, fills FROM daily_pnl")
    assert fills == 2
    assert legs[0][0] < 0 < legs[1][0]  # the buy pays its fee, the sell realises the edge
    assert loss > 0 and abs(loss - sum(max(0.0, -pnl) for (pnl,) in legs)) < 1e-9
