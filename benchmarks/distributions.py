"""Benchmark: reward distributions over N events of agent_rewards (default 10,000,000) in one DuckDB query.

    .venv/bin/python -m benchmarks.distributions [--events 10000000] [--agents 8] [--repeat 3]

Generates a synthetic history (by default one event a second spread over the agents, 2 % failed runs) in a temporary
store, then times ``compute_distributions`` (the query alone) and ``refresh_distributions`` (query + replacing
the table, under the store's lock).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent_pipeline.reward.distributions import compute_distributions, refresh_distributions
from agent_pipeline.reward.history import REWARDS
from agent_pipeline.store import Store


def generate(store: Store, events: int, agents: int, end: datetime, interval_s: float = 1.0) -> None:
    start = end - timedelta(seconds=events * interval_s)
    with store.connect() as conn:
        REWARDS.ensure(store, conn)
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute(f"""
            INSERT INTO agent_rewards
            SELECT 'e' || i, 'agent_' || (i % {agents}), 'strategy', 'signal',
                   ?::TIMESTAMPTZ + to_microseconds(CAST(i * {interval_s * 1e6} AS BIGINT)),
                   CASE WHEN hash(i) % 50 = 0 THEN NULL ELSE (hash(i) % 20000) / 10000.0 - 0.9 END,
                   CASE WHEN hash(i) % 50 = 0 THEN 'failed' ELSE 'recomputed' END,
                   'bench', now(), hash(i) % 50 = 0,
                   (hash(i * 7) % 100) / 10000.0, (hash(i * 13) % 5000) / 1000.0
            FROM range({events}) t(i)""", [start])
        conn.execute("CHECKPOINT")  # measure the steady state of a store, not a freshly written WAL


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--last-n-runs", type=int, default=100)
    parser.add_argument("--interval-seconds", type=float, default=1.0,
                        help="time between events (1 s: 10M events span 116 days, 605k in the last week)")
    args = parser.parse_args([] if argv is None else argv)
    end = datetime(2026, 1, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        t0 = time.perf_counter()
        generate(store, args.events, args.agents, end, args.interval_seconds)
        print(f"generated {args.events:,} events for {args.agents} agents, one every {args.interval_seconds:g} s, "
              f"in {time.perf_counter() - t0:.1f} s")
        query, refresh = [], []
        for _ in range(args.repeat):
            with store.connect() as conn:
                t0 = time.perf_counter()
                frame = compute_distributions(conn, as_of=end, last_n_runs=args.last_n_runs)
                query.append(time.perf_counter() - t0)
            snap = refresh_distributions(store, as_of=end, last_n_runs=args.last_n_runs)
            refresh.append(snap.seconds)
        print(f"rows: {len(frame)} (agents x windows)")
        print(f"query only:           median {statistics.median(query):.3f} s  (runs: "
              f"{', '.join(f'{q:.3f}' for q in query)})")
        print(f"refresh (query+write): median {statistics.median(refresh):.3f} s  (runs: "
              f"{', '.join(f'{q:.3f}' for q in refresh)})")


if __name__ == "__main__":
    main(sys.argv[1:])
