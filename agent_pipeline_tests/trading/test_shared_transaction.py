"""The execution layer can join a caller's open transaction (the quota tick writes a whole tick in one): its
batches commit with the caller's and roll back with it, and a batch on its own still gets its own transaction."""

import pytest

from agent_pipeline.market import SimulatedMarket
from agent_pipeline.store import begin
from agent_pipeline.trading import ExecutionConfig, GuardrailConfig, KillSwitch
from agent_pipeline.trading import tables as trading_tables
from agent_pipeline.trading.execution import ExecutionLayer

from .conftest import market_signal


def _layer(store, tmp_path):
    return ExecutionLayer(store, SimulatedMarket(fault_rate=0.0, stale_prob=0.0), guardrails=GuardrailConfig(),
                          execution=ExecutionConfig(), kill_switch=KillSwitch(tmp_path / "ks.json"))


def _result(event_id):
    return {"agent": "momentum", "strategy": "momentum", "event_id": event_id, "output": [market_signal()]}


def _orders(store):
    with store.connect(read_only=True) as conn:
        return conn.execute("SELECT count(*) FROM orders").fetchone()[0]


def test_batches_in_a_callers_transaction_commit_together(store, tmp_path):
    ex = _layer(store, tmp_path)
    with store.connect() as conn:
        store.ensure(conn, trading_tables.TRADING)
        with begin(conn):
            reports = [ex.execute(_result(f"ev{i}"), run_id="tick", conn=conn) for i in range(3)]
            assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 3  # seen inside it
    assert [r.filled for r in reports] == [1, 1, 1]
    assert _orders(store) == 3


def test_a_callers_rollback_takes_its_orders_with_it(store, tmp_path):
    ex = _layer(store, tmp_path)
    with store.connect() as conn:
        store.ensure(conn, trading_tables.TRADING)
        with pytest.raises(RuntimeError, match="tick failed"), begin(conn):
            assert ex.execute(_result("ev1"), run_id="tick", conn=conn).filled == 1
            raise RuntimeError("tick failed after the batch")
    assert _orders(store) == 0
    assert ex.execute(_result("ev2"), run_id="alone").filled == 1  # without conn: its own transaction
    assert _orders(store) == 1
