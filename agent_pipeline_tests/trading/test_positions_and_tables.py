"""Average-cost accounting as a pure function, the trading tables that book it, and the one path that writes them."""

import ast
import re
from collections import namedtuple
from dataclasses import astuple
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agent_pipeline
from agent_pipeline.trading import tables
from agent_pipeline.trading.positions import Position, apply_fill, position_after

PACKAGE = Path(agent_pipeline.__file__).parent
AT = datetime(2026, 3, 2, 12, tzinfo=UTC)
BrokerFill = namedtuple("BrokerFill", "leg symbol venue side size price fee_usd slippage_bps")


def test_a_round_trip_realises_the_price_move_less_both_fees():
    opened, pnl_open = apply_fill(Position(), side="buy", size=2.0, price=100.0, fee_usd=0.5)
    assert (opened.qty, opened.avg_price, pnl_open) == (2.0, 100.0, -0.5)  # a fee is realised at once
    added, _ = apply_fill(opened, side="buy", size=2.0, price=110.0, fee_usd=0.0)
    assert added.qty == 4.0 and added.avg_price == pytest.approx(105.0)
    half, pnl_half = apply_fill(added, side="sell", size=2.0, price=120.0, fee_usd=0.25)
    assert (half.qty, half.avg_price) == (2.0, pytest.approx(105.0)) and pnl_half == pytest.approx(29.75)
    flat, pnl_flat = apply_fill(half, side="sell", size=2.0, price=100.0, fee_usd=0.25)
    assert (flat.qty, flat.avg_price) == (0.0, 0.0) and pnl_flat == pytest.approx(-10.25)
    assert flat.realized_pnl_usd == pytest.approx(-0.5 + 29.75 - 10.25) and flat.fees_usd == pytest.approx(1.0)
    assert opened == Position(2.0, 100.0, -0.5, 0.5)  # nothing was changed in place


def test_selling_through_a_long_opens_a_short_at_the_fill_price():
    short, pnl = apply_fill(Position(1.0, 100.0), side="sell", size=3.0, price=90.0, fee_usd=0.0)
    assert (short.qty, short.avg_price, pnl) == (-2.0, 90.0, pytest.approx(-10.0))


fills = st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.floats(1e-3, 1e3), st.floats(1.0, 1e5),
                           st.floats(0.0, 10.0)), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(fills=fills)
def test_the_books_balance_whatever_the_fills(fills):
    position, realised = Position(), []
    for side, size, price, fee in fills:
        predicted = position_after(position.qty, position.avg_price, side, size, price)  # what the gate assumes
        position, pnl = apply_fill(position, side=side, size=size, price=price, fee_usd=fee)
        assert (position.qty, position.avg_price) == predicted[:2] and pnl == pytest.approx(predicted[2] - fee)
        realised.append(pnl)
    assert position.qty == pytest.approx(sum(s if side == "buy" else -s for side, s, _, _ in fills), abs=1e-6)
    assert position.realized_pnl_usd == pytest.approx(sum(realised), rel=1e-9, abs=1e-6)
    assert position.fees_usd == pytest.approx(sum(f for *_, f in fills))
    assert position.avg_price >= 0 and (position.qty != 0 or position.avg_price == 0)


def test_recorded_fills_book_the_same_positions_as_the_pure_function(store):
    legs = [("BTC-USD", "buy", 0.5, 60_000.0, 3.0), ("ETH-USD", "sell", 2.0, 3_000.0, 1.0),
            ("BTC-USD", "buy", 0.5, 62_000.0, 3.0), ("BTC-USD", "sell", 1.5, 61_000.0, 4.0)]
    expected: dict[str, Position] = {}
    with store.transaction(schema=tables.TRADING) as conn:
        for leg, (symbol, side, size, price, fee) in enumerate(legs):
            fill = BrokerFill(leg, symbol, "sim_a", side, size, price, fee, 1.5)
            booked = tables.record_fill(conn, order_id="o1", strategy="s", fill=fill, at=AT)
            expected[symbol], pnl = apply_fill(expected.get(symbol, Position()), side=side, size=size, price=price,
                                               fee_usd=fee)
            assert booked == pytest.approx(pnl)
        for symbol, position in expected.items():
            assert astuple(tables.read_position(conn, "s", symbol)) == pytest.approx(astuple(position))
        assert tables.read_position(conn, "s", "DOGE-USD") is None and tables.read_position(conn, "t", "BTC-USD") is None
        (n, pnl_sum), = conn.execute("SELECT count(*), sum(realized_pnl_usd) FROM fills").fetchall()
    assert n == 4 and pnl_sum == pytest.approx(sum(p.realized_pnl_usd for p in expected.values()))


def test_daily_pnl_adds_up_per_utc_day_and_counts_only_losses_against_the_budget(store):
    with store.transaction(schema=tables.TRADING) as conn:
        for pnl in (5.0, -3.0, -1.5):
            tables.add_daily_pnl(conn, AT.date(), pnl, AT)
        tables.add_daily_pnl(conn, AT.date().replace(day=3), -7.0, AT)
        rows = conn.execute("SELECT trading_date, realized_pnl_usd, loss_usd, fills FROM daily_pnl "
                            "ORDER BY trading_date").fetchall()
    assert [r[1:] for r in rows] == [(0.5, 4.5, 3), (-7.0, 7.0, 1)]


# -- the one write path --------------------------------------------------------------------------------------
TRADING_TABLES = "|".join(tables.TABLES)
WRITE = re.compile(rf"\b(INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+({TRADING_TABLES})\b", re.IGNORECASE)
WRITERS = {PACKAGE / "trading" / "tables.py", PACKAGE / "trading" / "approval_store.py"}


def _writes(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and WRITE.search(node.value):
            found.append(f"{path}:{node.lineno} writes {WRITE.search(node.value).group(3)}")
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in
              ("insert_sql", "insert_frame") and any(isinstance(a, ast.Constant) and a.value in tables.TABLES
                                                      for a in node.args)):
            found.append(f"{path}:{node.lineno} builds an insert into a trading table")
    return found


def test_only_the_trading_tables_module_writes_the_trading_tables():
    offences = [o for path in sorted(PACKAGE.rglob("*.py")) if path not in WRITERS for o in _writes(path)]
    assert offences == [], "write the trading tables through agent_pipeline.trading.tables:\n" + "\n".join(offences)


def test_the_write_scan_sees_a_bypass(tmp_path):
    rogue = tmp_path / "rogue.py"
    rogue.write_text('SQL = "INSERT INTO orders VALUES (?)"\nconn.execute("update fills set size = 0")\n'
                     'store.insert_frame(conn, "positions", frame)\nq = insert_sql("daily_pnl", cols)\n')
    assert len(_writes(rogue)) == 4
