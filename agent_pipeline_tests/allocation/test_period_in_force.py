"""The allocation period in force: one reader, used by the scheduler, the execution gate and the metrics."""

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import agent_pipeline
from agent_pipeline.allocation.result import Allocation
from agent_pipeline.allocation.tables import ALLOCATION, QuotaInForce, capital_in_force, period_in_force, write_decision
from agent_pipeline.metrics import domain_tables

PACKAGE = Path(agent_pipeline.__file__).parent
T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)


def _decide(store, period, quotas, capital):
    alloc = Allocation(quotas=quotas, scores={a: 0.0 for a in quotas}, policy="test", capital=capital)
    with store.connect() as conn:
        ALLOCATION.ensure(store, conn)
        write_decision(conn, period, period, alloc, {a: ("signal", a) for a in quotas}, {"seed": None})


def test_nothing_is_in_force_before_the_allocator_decides(store):
    with store.connect() as conn:
        assert period_in_force(conn) == (None, []) and capital_in_force(conn, "a") == (None, False)
        ALLOCATION.ensure(store, conn)  # the table exists, with no decision in it
        assert period_in_force(conn) == (None, []) and capital_in_force(conn, "a") == (None, False)


def test_the_latest_period_is_in_force_for_every_reader(store):
    _decide(store, T0, {"a": 3, "b": 1}, {"a": 900.0, "b": 100.0})
    _decide(store, T0 + timedelta(hours=1), {"a": 0, "c": 5}, {"a": 0.0, "c": 2_500.0})
    with store.connect() as conn:
        period, rows = period_in_force(conn)
        assert period == T0 + timedelta(hours=1)
        assert rows == [QuotaInForce("a", 0, 0.0), QuotaInForce("c", 5, 2_500.0)]
        assert capital_in_force(conn, "c") == (2_500.0, True)
        assert capital_in_force(conn, "a") == (0.0, True)  # decided: no capital (the gate denies)
        assert capital_in_force(conn, "b") == (None, False)  # only in an older period: not decided now
        samples = {(s.name, s.labels): s.value for s in domain_tables.allocator_quotas(conn)}
    assert samples == {("allocator_quota_runs", (("agent", "a"),)): 0.0,
                       ("allocator_capital_usd", (("agent", "a"),)): 0.0,
                       ("allocator_quota_runs", (("agent", "c"),)): 5.0,
                       ("allocator_capital_usd", (("agent", "c"),)): 2_500.0,
                       ("allocator_decided_at_timestamp_seconds", ()): (T0 + timedelta(hours=1)).timestamp()}


@pytest.mark.parametrize("ddl,expected", [
    ("CREATE TABLE allocator_quotas (period_start TIMESTAMPTZ, agent VARCHAR, quota INTEGER)",
     [QuotaInForce("a", 2, None)]),
    ("CREATE TABLE allocator_quotas (period_start TIMESTAMPTZ, agent VARCHAR, capital_usd DOUBLE)",
     [QuotaInForce("a", None, 50.0)]),
])
def test_a_table_lacking_a_column_reads_as_not_known_not_as_zero(store, ddl, expected):
    with store.connect() as conn:
        conn.execute(ddl)
        value = 2 if "quota INTEGER" in ddl else 50.0
        conn.execute("INSERT INTO allocator_quotas VALUES (?, 'a', ?)", [T0, value])
        assert period_in_force(conn) == (T0, expected)
        assert capital_in_force(conn, "a") == (expected[0].capital_usd, True)


def test_only_the_allocation_tables_module_reads_the_latest_period():
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "allocation" / "tables.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "allocator_quotas" in node.value \
                    and "SELECT" in node.value.upper():
                offences.append(f"{path}:{node.lineno}")
    assert offences == [], "read the period in force with allocation.tables.period_in_force:\n" + "\n".join(offences)
