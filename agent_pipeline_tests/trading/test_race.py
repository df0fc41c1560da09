"""A trip racing orders from several processes: no order is accepted after the trip is committed."""

import multiprocessing as mp
import time
from datetime import UTC, datetime

from agent_pipeline.market import SimulatedMarket
from agent_pipeline.store import Store
from agent_pipeline.trading import ExecutionConfig, GuardrailConfig, KillSwitch
from agent_pipeline.trading.execution import ExecutionLayer

from .conftest import market_signal


def _worker(db: str, ks: str, worker: int, stop, started) -> None:
    layer = ExecutionLayer(Store(db), SimulatedMarket(fault_rate=0.0, stale_prob=0.0),
                           guardrails=GuardrailConfig(max_daily_loss_usd=1e9),
                           execution=ExecutionConfig(default_capital_usd=4_000.0), kill_switch=KillSwitch(ks))
    n = 0
    while not stop.is_set():
        side = "buy" if n % 2 == 0 else "sell"
        layer.execute({"agent": f"w{worker}", "strategy": f"w{worker}", "event_id": f"w{worker}-{n}",
                       "output": [market_signal(side=side)]}, run_id=f"run-{worker}")
        n += 1
        started.set()


def test_no_order_is_accepted_after_a_trip_commits(tmp_path):
    db, ks = str(tmp_path / "db.duckdb"), str(tmp_path / "kill_switch.json")
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    started = [ctx.Event() for _ in range(3)]
    procs = [ctx.Process(target=_worker, args=(db, ks, i, stop, started[i])) for i in range(3)]
    for p in procs:
        p.start()
    try:
        for event in started:
            assert event.wait(60), "a worker did not place its first order"
        time.sleep(0.5)
        KillSwitch(ks).trip("race test", by="test")
        time.sleep(1.0)  # workers keep trying after the trip
    finally:
        stop.set()
        for p in procs:
            p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    committed = datetime.fromtimestamp(KillSwitch(ks).audit()[-1]["committed_at_epoch"], UTC)
    with Store(db).connect() as conn:
        before, last_order = conn.execute("SELECT count(*), max(created_at) FROM orders").fetchone()
        late_approvals = conn.execute("SELECT count(*) FROM gate_decisions WHERE approved AND decided_at >= ?",
                                      [committed]).fetchone()[0]
        halted = conn.execute("SELECT count(*) FROM gate_decisions WHERE reason_code = 'KILL_SWITCH_HALTED'"
                              ).fetchone()[0]
    assert before > 3, "the race needs orders before the trip"
    assert last_order < committed
    assert late_approvals == 0
    assert halted >= 1, "workers kept trying after the trip and were refused"
