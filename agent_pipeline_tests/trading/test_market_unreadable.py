"""Hidden case 11 of issue 9: reading the market at decision time never raises into the gate.

Whatever the market source answers (quotes whose attributes raise, a non-Exception raised from ``quotes``, an
iterator that fails half way, a clock that raises), every proposal of the batch is a recorded denial with a
reason code, and nothing fills.
"""

import pytest

from agent_pipeline.trading import KillSwitch, Reason
from agent_pipeline.trading.execution import ExecutionLayer

from .conftest import BookMarket, Clock, book, proposal

DEEP = book(bid=50_000.0, ask=50_010.0, bid_size=100.0, ask_size=100.0)


class Odd(BaseException):
    """Not an Exception: slips past ``except Exception``."""


class RaisingVenue:
    symbol = "BTC-USD"

    @property
    def venue(self):
        raise RuntimeError("venue unreadable")


class HostileMarket(BookMarket):
    def __init__(self, answer):
        super().__init__([DEEP])
        self.answer = answer

    def quotes(self, now):
        return self.answer(now)


def half_then_fail(now):
    yield from BookMarket([DEEP]).quotes(now)
    raise Odd("stream broke")


def raise_odd(now):
    raise Odd("odd failure")


ANSWERS = {
    "quote attribute raises": (lambda now: [RaisingVenue()], Reason.MARKET_UNREADABLE),
    "non-Exception from quotes": (raise_odd, Reason.MARKET_DATA_MISSING),
    "iterator fails half way": (half_then_fail, Reason.MARKET_DATA_MISSING),
    "unhashable venue": (lambda now: [type("Q", (), {"venue": [], "symbol": "BTC-USD"})()],
                         Reason.MARKET_UNREADABLE),
}


def decisions(store):
    with store.connect() as conn:
        return conn.execute("SELECT approved, reason_code FROM gate_decisions").fetchall()


@pytest.mark.parametrize("name", list(ANSWERS))
def test_an_unreadable_market_is_a_recorded_denial(store, tmp_path, name):
    answer, code = ANSWERS[name]
    ex = ExecutionLayer(store, HostileMarket(answer), kill_switch=KillSwitch(tmp_path / "ks.json", key=b""),
                        clock=Clock())
    report = ex.execute({"agent": "a", "event_id": "ev1", "output": [proposal(books=[DEEP])] * 2}, run_id="r1")
    assert report.filled == 0 and report.denied == 2
    assert decisions(store) == [(False, code.value)] * 2


def test_a_clock_that_raises_is_an_unreadable_market(store, tmp_path):
    calls = []

    def clock():
        calls.append(1)
        if len(calls) == 1:  # the snapshot's read of the time
            raise OverflowError("clock broke")
        return Clock()()

    ex = ExecutionLayer(store, BookMarket([DEEP]), kill_switch=KillSwitch(tmp_path / "ks.json", key=b""),
                        clock=clock)
    report = ex.execute({"agent": "a", "event_id": "ev1", "output": [proposal(books=[DEEP])]}, run_id="r1")
    assert report.filled == 0 and decisions(store) == [(False, Reason.MARKET_UNREADABLE.value)]
