"""Hidden case 2 of issue 9: an allocation period that has run out does not keep spending its capital.

The period in force is the latest decided one. When it has ended (``period_start`` + the allocation period) and
``[execution] allocation_grace_sec`` has passed with no newer decision (the allocator is down, its schedule was
turned off), orders are denied with ``ALLOCATION_STALE`` instead of being sized with capital nobody decided for
this time.
"""

from datetime import timedelta

import pytest

from agent_pipeline.allocation.tables import ALLOCATION
from agent_pipeline.trading import ExecutionConfig, KillSwitch
from agent_pipeline.trading.execution import ExecutionLayer

from .conftest import NOW, BookMarket, Clock, book, proposal

DEEP = book(bid=50_000.0, ask=50_010.0, bid_size=100.0, ask_size=100.0)
HOUR = timedelta(hours=1)


def quota(store, period_start, agent="a", capital=8_000.0):
    with store.transaction(schema=ALLOCATION) as conn:
        conn.execute("INSERT INTO allocator_quotas (period_start, agent, strategy, kind, quota, capital_usd, policy, "
                     "decided_at) VALUES (?, ?, ?, 'signal', 1, ?, 'ucb', ?)",
                     [period_start, agent, agent, capital, period_start])


def layer(store, tmp_path, now, **execution):
    return ExecutionLayer(store, BookMarket([DEEP]), execution=ExecutionConfig(**execution),
                          kill_switch=KillSwitch(tmp_path / "ks.json", key=b""), clock=Clock(now),
                          allocation_period_sec=3_600.0)


def run(ex, event_id="ev1"):
    return ex.execute({"agent": "a", "event_id": event_id, "output": [proposal(notional=1_000.0, books=[DEEP])]},
                      run_id="r1")


@pytest.mark.parametrize("late", [timedelta(seconds=301), timedelta(hours=5), timedelta(days=40)])
def test_an_expired_period_is_denied_after_the_grace(store, tmp_path, late):
    quota(store, NOW - HOUR - late)  # ended `late` ago
    report = run(layer(store, tmp_path, NOW))
    assert report.by_reason == {"ALLOCATION_STALE": 1}, report.denials
    assert "allocation_grace_sec" in report.denials[0][2]
    with store.connect() as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (0,)


@pytest.mark.parametrize("into", [timedelta(0), timedelta(minutes=59), HOUR + timedelta(seconds=299)])
def test_a_period_in_force_or_within_its_grace_trades(store, tmp_path, into):
    quota(store, NOW - into)
    report = run(layer(store, tmp_path, NOW))
    assert report.filled == 1, report.denials


def test_a_newer_decision_lifts_the_denial(store, tmp_path):
    quota(store, NOW - 3 * HOUR)
    assert run(layer(store, tmp_path, NOW), "ev1").by_reason == {"ALLOCATION_STALE": 1}
    quota(store, NOW - timedelta(minutes=5))
    assert run(layer(store, tmp_path, NOW), "ev2").filled == 1


def test_the_grace_is_configurable(store, tmp_path):
    quota(store, NOW - HOUR - timedelta(minutes=20))
    assert run(layer(store, tmp_path, NOW, allocation_grace_sec=1_800.0)).filled == 1


def test_no_decision_yet_is_not_stale(store, tmp_path):
    assert run(layer(store, tmp_path, NOW)).filled == 1  # the default capital applies until the first decision
