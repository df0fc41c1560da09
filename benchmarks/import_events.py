"""Benchmark: import an events.jsonl of N lines (default 1,000,000) into a fresh store, import it again, then
import it after 1 % more lines were appended.

    .venv/bin/python -m benchmarks.import_events [--lines 1000000] [--bad-every 1000] [--repeat 1] [--invalid-byte]
        [--backend duckdb|postgresql] [--url postgresql://...]

The file mimics the prototype's telemetry log (epoch timestamp, latency in ms, cost, error, a one-item output),
with one bad line (invalid JSON, NaN reward, missing agent, in turn) every ``--bad-every`` lines; ``--invalid-byte``
adds one line that is not valid UTF-8 (the slower, line-by-line decoding path). Writing the file is not timed;
each import is, in wall-clock and in CPU seconds of this process (DuckDB's threads included), since CPU time moves
less than wall time when other work shares the machine. ``--backend postgresql`` imports into a fresh database
of a throw-away server started from Debian's binaries (durability off, as in the tests), or into ``--url`` (an
empty database; with ``--repeat`` above 1 it is not emptied in between). The CPU seconds are this process's:
the server's own are not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from agent_pipeline.store import Store
from agent_pipeline.store.importer import import_events

BAD = ('{"agent": "broken", "reward": ', '{"agent": "nan", "reward": NaN}', '{"reward": 0.1}')
T0 = 1_700_000_000


def _line(rng: random.Random, i: int) -> str:
    agents = ["cross_venue_arb", "momentum", "regime_watcher", "llm_news", "macro"]
    failed = rng.random() < 0.02
    return json.dumps({
        "ts": T0 + i * 6, "agent": agents[i % len(agents)],
        "reward": None if failed else round(rng.gauss(0.05, 0.3), 6),
        "latency_ms": round(rng.expovariate(1 / 200), 3), "cost_usd": round(rng.random() / 100, 6),
        "error": "TimeoutError: upstream" if failed else None,
        "output": [] if failed else [{"symbol": "BTC/USDT", "profit_pct": round(rng.random(), 4)}],
    })


def write_file(path: Path, lines: int, bad_every: int, *, start: int = 0, invalid_byte: bool = False) -> None:
    rng = random.Random(42 + start)
    with path.open("ab") as fh:
        for i in range(start, start + lines):
            if bad_every and i % bad_every == bad_every - 1:
                fh.write(BAD[(i // bad_every) % len(BAD)].encode() + b"\n")
                continue
            fh.write(_line(rng, i).encode() + b"\n")
        if invalid_byte:
            fh.write(b'{"agent": "latin-1 \xe9", "reward": 0.1}\n')


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--bad-every", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--invalid-byte", action="store_true")
    parser.add_argument("--backend", choices=("duckdb", "postgresql"), default="duckdb")
    parser.add_argument("--url", help="with --backend postgresql: an empty database instead of a throw-away server")
    args = parser.parse_args([] if argv is None else argv)
    with contextlib.ExitStack() as stack:
        new_database = _databases(args, stack) if args.backend == "postgresql" else None
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                store = Store(new_database() if new_database else Path(tmp) / "bench.duckdb")
                _run(args, Path(tmp) / "events.jsonl", store)


def _databases(args: argparse.Namespace, stack: contextlib.ExitStack):
    """A function giving the database each repetition imports into."""
    if args.url:
        return lambda: args.url
    from agent_pipeline_tests.postgres_server import PostgresServer, binaries

    bindir = binaries()
    if bindir is None:
        raise SystemExit("no PostgreSQL binaries: run ops/install-system-deps.sh, or pass --url")
    server = PostgresServer(bindir).start()
    stack.callback(server.stop)
    return server.create_database


def _run(args: argparse.Namespace, path: Path, store: Store) -> None:
    write_file(path, args.lines, args.bad_every, invalid_byte=args.invalid_byte)
    size_mb = path.stat().st_size / 1e6
    for label in ("first import", "second import", "after growing 1 %"):
        if label.startswith("after"):
            write_file(path, args.lines // 100, args.bad_every, start=args.lines)
        lines = sum(1 for _ in path.open("rb"))
        t0, c0 = time.perf_counter(), _cpu()
        report = import_events(store, path)
        seconds, cpu = time.perf_counter() - t0, _cpu() - c0
        print(f"{label}: {lines:,} lines ({size_mb:.0f} MB) in {seconds:.2f} s, {cpu:.2f} s CPU "
              f"({lines / seconds:,.0f} lines/s): {report.inserted:,} new, "
              f"{report.already_present:,} already present, {report.quarantined_total:,} quarantined",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
