"""Overhead of instrumenting one agent run and writing its event, against a bare call of the same agent;
and the bulk path used by imports and backfills.

    .venv/bin/python -m benchmarks.instrumentation_overhead
"""

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from agent_pipeline.agents import AgentContext, AgentSpec, run_instrumented
from agent_pipeline.agents.registry import FunctionAgent, LoadedAgent
from agent_pipeline.market import SimulatedMarket
from agent_pipeline.reward import RewardConfig
from agent_pipeline.store import AgentEvent, Store, append_event, append_frame
from agent_pipeline.store.events import events_frame

RUNS = 2_000


def _agent(ctx):
    return [{"profit_pct": 0.5, "data_age_sec": 0.1, "notional_usd": 1000.0}]


def _per_run_ms(fn, n: int) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), float(np.percentile(samples, 99))


def main() -> None:
    loaded = LoadedAgent(AgentSpec(name="bench", ref="bench:fn"), FunctionAgent("bench", "signal", "momentum", _agent))
    ctx = AgentContext(now=datetime.now(UTC), market=SimulatedMarket(fault_rate=0), run_id="bench")
    config = RewardConfig()
    rows = []
    bare = _per_run_ms(lambda: _agent(ctx), RUNS)
    instrumented = _per_run_ms(lambda: run_instrumented(loaded, ctx, config), RUNS)
    rows.append(("bare agent call", *bare))
    rows.append(("instrumented run (no write)", *instrumented))
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        with store.connect() as conn:
            held = _per_run_ms(lambda: append_event(store, run_instrumented(loaded, ctx, config), conn=conn), RUNS)
        rows.append(("instrumented run + event write (held connection)", *held))
        own = _per_run_ms(lambda: append_event(store, run_instrumented(loaded, ctx, config)), 200)
        rows.append(("instrumented run + event write (own connection, as an op)", *own))

        n_bulk = 500_000
        start = datetime(2026, 1, 1, tzinfo=UTC)
        frame = events_frame(AgentEvent(run_id=f"b{i}", agent=f"a{i % 10}", started_at=start + timedelta(seconds=i),
                                        latency_seconds=0.1, reward=0.01 * (i % 7), output=[{"profit_pct": 0.1}])
                             for i in range(n_bulk))
        t0 = time.perf_counter()
        inserted = append_frame(store, frame)
        bulk_s = time.perf_counter() - t0
    print("| path | median ms/run | p99 ms/run | overhead vs bare (median) |")
    print("|---|---|---|---|")
    for name, med, p99 in rows:
        print(f"| {name} | {med:.3f} | {p99:.3f} | {med - bare[0]:+.3f} |")
    print(f"\nbulk append_frame: {inserted:,} events in {bulk_s:.2f} s = {inserted / bulk_s:,.0f} events/s")


if __name__ == "__main__":
    main()
