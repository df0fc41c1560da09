"""Benchmark: import an events.jsonl of N lines (default 1,000,000) into a fresh store, then import it again.

    .venv/bin/python -m benchmarks.import_events [--lines 1000000] [--bad-every 1000]

The file mimics the seed's telemetry log (epoch timestamp, latency in ms, cost, error, a one-item output), with
one bad line (invalid JSON, NaN reward, missing agent, in turn) every ``--bad-every`` lines. Writing the file is
not timed; the first import (everything new) and the second (everything already present) are.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from agent_pipeline.store import Store
from agent_pipeline.store.importer import import_events

BAD = ('{"agent": "broken", "reward": ', '{"agent": "nan", "reward": NaN}', '{"reward": 0.1}')


def write_file(path: Path, lines: int, bad_every: int) -> None:
    rng = random.Random(42)
    agents = ["cross_venue_arb", "momentum", "regime_watcher", "llm_news", "macro"]
    t0 = 1_700_000_000
    with path.open("w") as fh:
        for i in range(lines):
            if bad_every and i % bad_every == bad_every - 1:
                fh.write(BAD[(i // bad_every) % len(BAD)] + "\n")
                continue
            failed = rng.random() < 0.02
            fh.write(json.dumps({
                "ts": t0 + i * 6, "agent": agents[i % len(agents)],
                "reward": None if failed else round(rng.gauss(0.05, 0.3), 6),
                "latency_ms": round(rng.expovariate(1 / 200), 3), "cost_usd": round(rng.random() / 100, 6),
                "error": "TimeoutError: upstream" if failed else None,
                "output": [] if failed else [{"symbol": "BTC/USDT", "profit_pct": round(rng.random(), 4)}],
            }) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--bad-every", type=int, default=1_000)
    args = parser.parse_args([] if argv is None else argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        write_file(path, args.lines, args.bad_every)
        size_mb = path.stat().st_size / 1e6
        store = Store(Path(tmp) / "bench.duckdb")
        for label in ("first import", "second import"):
            t0 = time.perf_counter()
            report = import_events(store, path)
            seconds = time.perf_counter() - t0
            print(f"{label}: {args.lines:,} lines ({size_mb:.0f} MB) in {seconds:.2f} s "
                  f"({args.lines / seconds:,.0f} lines/s): {report.inserted:,} new, "
                  f"{report.already_present:,} already present, {report.quarantined_total:,} quarantined")


if __name__ == "__main__":
    main(sys.argv[1:])
