"""``trading_realized_pnl_usd{period="today"}`` is the PnL of the UTC date now: not the latest date in the table,
not the host's local date, and 0 once a new UTC day starts with nothing filled yet."""

import os
import time
from datetime import UTC, datetime

import pytest

from agent_pipeline.metrics.collector import take_snapshot
from agent_pipeline_tests.metrics.helpers import loop_tables, pnl

MIDNIGHT = datetime(2026, 3, 1, tzinfo=UTC).timestamp()


@pytest.fixture
def far_east_host():
    """A host 14 hours ahead of UTC: at 23:59 UTC its local date is already the next day."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "KIR-14"
    time.tzset()
    yield
    if before is None:
        os.environ.pop("TZ")
    else:
        os.environ["TZ"] = before
    time.tzset()


def _pnl(store, now: float) -> dict[str, float]:
    return {dict(s.labels)["period"]: s.value for s in take_snapshot(store, now=now).samples
            if s.name == "trading_realized_pnl_usd"}


def test_today_is_the_utc_date_of_now_around_midnight(store, far_east_host):
    loop_tables(store)
    with store.connect() as conn:
        pnl(conn, "2026-02-27", -3.0)
        pnl(conn, "2026-02-28", -20.0)
        pnl(conn, "2026-03-01", 7.5)
    assert _pnl(store, MIDNIGHT - 1) == {"today": -20.0, "cumulative": -15.5}  # 23:59:59 UTC on Feb 28
    assert _pnl(store, MIDNIGHT) == {"today": 7.5, "cumulative": -15.5}
    assert _pnl(store, MIDNIGHT + 86_400 - 1) == {"today": 7.5, "cumulative": -15.5}
    assert _pnl(store, MIDNIGHT + 86_400) == {"today": 0.0, "cumulative": -15.5}  # nothing filled on Mar 2 yet


def test_an_empty_ledger_reads_zero_and_a_missing_one_nothing(store):
    assert _pnl(store, MIDNIGHT) == {}  # no store yet
    loop_tables(store)
    assert _pnl(store, MIDNIGHT) == {"today": 0.0, "cumulative": 0.0}
