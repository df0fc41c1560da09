"""Hidden cases of issue 9: an order's identity is the registry's, and text in an output is plain text.

- hidden case 1: a run's dict naming another strategy does not move the order into that strategy's books;
- hidden case 10: str subclasses (``__eq__`` always true, a ``__str__`` that lies, ``lower`` overridden) used as
  side, symbol, venue or order_key are copied to plain ``str`` before any check, so a "buy" cannot pass the
  reduce-only check as a "sell" and an order key cannot change between the duplicate check and the ledger.
"""

import json

import pytest

from agent_pipeline.trading import KillSwitch
from agent_pipeline.trading.execution import ExecutionLayer

from .conftest import Always, BookMarket, Clock, book, proposal

DEEP = book(bid=50_000.0, ask=50_010.0, bid_size=100.0, ask_size=100.0)


class Shapeshifter(str):
    """Prints (and lowers) as something else each time it is asked."""

    calls = 0

    def __str__(self):
        type(self).calls += 1
        return f"shape{type(self).calls}"

    def lower(self):
        return "sell"


def layer(store, tmp_path):
    return ExecutionLayer(store, BookMarket([DEEP]), kill_switch=KillSwitch(tmp_path / "ks.json", key=b""),
                          clock=Clock())


def query(store, sql):
    with store.connect() as conn:
        return conn.execute(sql).fetchall()


def test_a_run_naming_another_strategy_trades_under_the_registered_one(store, tmp_path):
    ex = layer(store, tmp_path)
    run = {"agent": "mine", "strategy": "cross_venue_arb", "event_id": "ev1",
           "output": [proposal(notional=1_000.0, books=[DEEP])]}
    report = ex.execute(run, run_id="r1", agent="mine", strategy="mine_strategy")
    assert report.filled == 1, report.denials
    assert query(store, "SELECT DISTINCT strategy FROM orders") == [("mine_strategy",)]
    assert query(store, "SELECT DISTINCT strategy FROM positions") == [("mine_strategy",)]
    assert query(store, "SELECT DISTINCT strategy FROM gate_decisions") == [("mine_strategy",)]


def test_a_run_of_another_agent_is_refused(store, tmp_path):
    ex = layer(store, tmp_path)
    with pytest.raises(ValueError, match="registered agent 'mine'"):
        ex.execute({"agent": "cross_venue_arb", "event_id": "ev1", "output": []}, run_id="r1", agent="mine",
                   strategy="mine")


def test_an_always_equal_side_cannot_pass_reduce_only_as_a_sell(store, tmp_path):
    ex = layer(store, tmp_path)
    first = ex.execute({"agent": "a", "event_id": "ev1", "output": [proposal(notional=1_000.0, books=[DEEP])]},
                       run_id="r1")
    assert first.filled == 1, first.denials
    ex.kill.reduce("incident: reduce only", by="ops")
    hostile = proposal(notional=500.0, books=[DEEP])
    hostile["side"] = Always("buy")
    report = ex.execute({"agent": "a", "event_id": "ev2", "output": [hostile]}, run_id="r2")
    assert report.filled == 0 and report.denied == 1, report.by_reason
    assert report.by_reason == {"KILL_SWITCH_REDUCING": 1}
    assert query(store, "SELECT count(*) FROM orders") == [(1,)]


@pytest.mark.parametrize("field", ["side", "symbol", "venue"])
def test_an_always_equal_text_field_is_judged_as_its_own_characters(store, tmp_path, field):
    ex = layer(store, tmp_path)
    item = proposal(notional=1_000.0, books=[DEEP])
    item[field] = Always("nonsense")
    report = ex.execute({"agent": "a", "event_id": "ev1", "output": [item]}, run_id="r1")
    assert report.filled == 0 and report.denied == 1, report.by_reason


def test_text_that_prints_as_something_else_is_stored_as_its_characters(store, tmp_path):
    ex = layer(store, tmp_path)
    item = proposal(notional=1_000.0, books=[DEEP])
    item["symbol"] = Shapeshifter("BTC-USD")
    item["side"] = Shapeshifter("buy")
    report = ex.execute({"agent": "a", "event_id": "ev1", "output": [item]}, run_id="r1")
    assert report.filled == 1, report.denials
    assert query(store, "SELECT symbol, side FROM orders") == [("BTC-USD", "buy")]
    again = ex.execute({"agent": "a", "event_id": "ev1", "output": [item]}, run_id="r1")  # a retry of the op
    assert again.by_reason == {"DUPLICATE_ORDER": 1}
    assert query(store, "SELECT count(*) FROM orders") == [(1,)]


def test_lone_surrogates_in_a_proposal_are_recorded_not_lost(store, tmp_path):
    ex = layer(store, tmp_path)
    honest = proposal(notional=1_000.0, books=[DEEP], note="\ud800 odd", **{"\udfff": 1})
    odd_symbol = proposal(notional=1_000.0, books=[DEEP], symbol="BTC\udc80USD")
    report = ex.execute({"agent": "a", "event_id": "ev1", "output": [honest, odd_symbol]}, run_id="r1")
    assert report.filled == 1 and report.denied == 1, report.denials
    rows = query(store, "SELECT approved, symbol, inputs FROM gate_decisions ORDER BY approved DESC")
    assert [r[0] for r in rows] == [True, False]
    assert json.loads(rows[0][2])["note"] == "\\ud800 odd" and rows[1][1] == "BTC\\udc80USD"
