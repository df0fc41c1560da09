"""The two store backends under concurrent writers: event writes and the gate's ``check()``.

For each backend (the DuckDB file, PostgreSQL) and 1, 4 and 16 writer processes started together, every process

- appends ``--events`` events, each in its own connection as a finished run does (``append_event``): the time of
  one call, lock wait included;
- runs ``--batches`` gate batches as the execution layer does: the store's write transaction (lock wait, then
  ``--checks`` ``check()`` calls on the store-backed gate state with every check configured, then commit). It
  reports each ``check()`` (which reads the kill switch: the file on DuckDB, the database's row on PostgreSQL) and
  each whole batch;
- reads the kill switch ``--reads`` times (``status()``, what every check pays for it).

The DuckDB rows are the baseline: the same work, the same run, the embedded default. PostgreSQL runs on a
throw-away server started from Debian's binaries (or ``--url``), with durability off as in the tests.

    .venv/bin/python -m benchmarks.store_backends [--events N] [--batches N] [--checks N] [--writers 1,4,16]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from agent_pipeline.store import AgentEvent, Store, append_event
from agent_pipeline.trading import KillSwitch, TradeGuardrails
from agent_pipeline.trading import tables as trading_tables
from agent_pipeline.trading.kill_switch_store import DatabaseKillSwitch
from agent_pipeline.trading.store_state import StoreGateState
from benchmarks.gate_orders import ALL_CHECKS, SIGNAL


def _worker(job: dict) -> dict:
    os.environ["AGENT_PIPELINE_HOME"] = job["home"]
    store = Store(job["location"])
    kill = (DatabaseKillSwitch(store, key=b"") if store.shared
            else KillSwitch(Path(job["home"]) / "kill_switch.json", key=b""))
    while time.time() < job["start_at"]:  # every writer starts at once
        time.sleep(0.001)
    writes = []
    for i in range(job["events"]):
        event = AgentEvent(run_id=f"{job['name']}-{i}", agent=f"bench{job['index'] % 4}", started_at=datetime.now(UTC),
                           latency_seconds=0.01, reward=0.1, output=[{"profit_pct": 0.1}])
        t0 = time.perf_counter()
        append_event(store, event)
        writes.append(time.perf_counter() - t0)
    state = StoreGateState(store, ALL_CHECKS)
    gate = TradeGuardrails(ALL_CHECKS, kill, state=state)
    checks, batches = [], []
    for b in range(job["batches"]):
        t0 = time.perf_counter()
        with store.transaction(schema=trading_tables.TRADING) as conn, state.bind(conn):
            for c in range(job["checks"]):
                signal = {**SIGNAL, "order_key": f"{job['name']}-{b}-{c}"}
                t1 = time.perf_counter()
                decision = gate.check(signal)
                checks.append(time.perf_counter() - t1)
                if not decision.ok:
                    raise RuntimeError(f"the benchmark's signal was denied: {decision.reason}")
        batches.append(time.perf_counter() - t0)
    reads = []
    for _ in range(job["reads"]):
        t0 = time.perf_counter()
        kill.status()
        reads.append(time.perf_counter() - t0)
    if hasattr(kill, "close"):
        kill.close()
    return {"writes": writes, "checks": checks, "batches": batches, "switch": reads}


def _ms(samples: list[float]) -> tuple[float, float]:
    ms = np.asarray(samples) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def run(location: str, home: Path, writers: int, args) -> dict:
    if Store(location).shared:
        DatabaseKillSwitch(Store(location), key=b"").clear("benchmark")
    jobs = [{"location": location, "home": str(home), "name": f"w{writers}-{i}", "index": i, "events": args.events,
             "batches": args.batches, "checks": args.checks, "reads": args.reads, "start_at": time.time() + 2.0 + 0.3 * writers}
            for i in range(writers)]
    with multiprocessing.get_context("spawn").Pool(writers) as pool:
        results = pool.map(_worker, jobs)
    merged = {k: [x for r in results for x in r[k]] for k in ("writes", "checks", "batches", "switch")}
    return {k: _ms(v) for k, v in merged.items()} | {"n": {k: len(v) for k, v in merged.items()}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--checks", type=int, default=5)
    parser.add_argument("--reads", type=int, default=200, help="kill-switch reads per process")
    parser.add_argument("--writers", default="1,4,16")
    parser.add_argument("--url", help="a PostgreSQL store URL (an empty database) instead of a throw-away server")
    args = parser.parse_args(argv)
    counts = [int(w) for w in args.writers.split(",")]
    server = None
    if args.url is None:
        from agent_pipeline_tests.postgres_server import PostgresServer, binaries

        bindir = binaries()
        if bindir is None:
            raise SystemExit("no PostgreSQL binaries: run ops/install-system-deps.sh, or pass --url")
        server = PostgresServer(bindir).start()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for writers in counts:
                for backend in ("duckdb", "postgresql"):
                    home = Path(tmp) / f"{backend}-{writers}"
                    home.mkdir()
                    location = str(home / "agent_pipeline.duckdb") if backend == "duckdb" else \
                        (server.create_database() if server else args.url)
                    result = run(location, home, writers, args)
                    rows.append((backend, writers, result))
                    print(json.dumps({"backend": backend, "writers": writers, **result}), flush=True)
    finally:
        if server is not None:
            server.stop()
    print("\n| backend | writers | event write p50 / p99 (ms) | `check()` p50 / p99 (ms) | kill-switch read p50 / p99 "
          f"(ms) | gate batch (lock wait + {args.checks} checks + commit) p50 / p99 (ms) |")
    print("|---|---|---|---|---|---|")
    for backend, writers, r in rows:
        print(f"| {backend} | {writers} | {r['writes'][0]:.2f} / {r['writes'][1]:.2f} | {r['checks'][0]:.3f} / "
              f"{r['checks'][1]:.3f} | {r['switch'][0]:.3f} / {r['switch'][1]:.3f} | {r['batches'][0]:.1f} / "
              f"{r['batches'][1]:.1f} |")


if __name__ == "__main__":
    main()
