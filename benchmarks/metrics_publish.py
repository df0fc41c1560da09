"""Publish time and payload size with millions of events in the store.

    .venv/bin/python -m benchmarks.metrics_publish [--events 10000000] [--agents 8] [--grid]

Fills a fresh store with synthetic events in bulk (one INSERT ... SELECT), starts a real Pushgateway on a free
loopback port when the binary is installed (else a local HTTP sink), and times ``publish()``:

- cold: the first publish folds every stored event into the rollup (once per store, O(events));
- warm: nothing new since the last publish (what most pushes are);
- +1,000: after 1,000 new events (an end-of-run push after a busy minute).

The target is "well under a second, growing with agents and buckets, not with events"; ``--grid`` adds rows with
fewer events and more agents to show which one the cost follows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "True")

from agent_pipeline.metrics.config import MetricsConfig  # noqa: E402
from agent_pipeline.metrics.publish import publish  # noqa: E402
from agent_pipeline.store import Store  # noqa: E402
from agent_pipeline.store.events import EVENTS  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Sink(BaseHTTPRequestHandler):
    def do_PUT(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def start_gateway():
    """(url, stop) of a real Pushgateway, or of an HTTP sink when the binary is not installed."""
    port = _free_port()
    if shutil.which("prometheus-pushgateway"):
        proc = subprocess.Popen(["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}",
                                 "--persistence.file="], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/-/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        return url, "pushgateway 1.5", lambda: (proc.terminate(), proc.wait(10))
    server = ThreadingHTTPServer(("127.0.0.1", port), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}", "HTTP sink", server.shutdown


def fill(store: Store, events: int, agents: int, offset: int = 0) -> float:
    """Bulk-insert synthetic events (latency, cost, reward spread across every bucket; 5% errors)."""
    t0 = time.perf_counter()
    with store.connect() as conn:
        EVENTS.ensure(store, conn)
        conn.execute(f"""
            INSERT INTO agent_events (event_id, run_id, agent, started_at, latency_seconds, cost_usd, reward, error)
            SELECT 'e' || (i + {offset}), 'r' || (i + {offset}), 'agent_' || ((i + {offset}) % {agents}),
                   TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_microseconds(i + {offset}) * 1000,
                   (hash(i + {offset}) % 12000) / 1000.0,
                   CASE WHEN (i + {offset}) % 3 = 0 THEN NULL ELSE (hash(i + {offset} + 1) % 120) / 1000.0 END,
                   CASE WHEN (i + {offset}) % 20 = 0 THEN NULL ELSE (hash(i + {offset} + 2) % 6000) / 1000.0 - 3 END,
                   CASE WHEN (i + {offset}) % 20 = 0 THEN 'RuntimeError: synthetic' END
            FROM range({events}) t(i)""")
    return time.perf_counter() - t0


def measure(events: int, agents: int, gateway: str, repeats: int = 5) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        store = Store.at_home(home)
        fill_s = fill(store, events, agents)
        config = MetricsConfig(gateway_url=gateway)  # built explicitly: a benchmark reads no config.toml
        cold = publish(config, home=home, store=store)
        assert cold.ok, cold.summary()
        warm = []
        for _ in range(repeats):
            r = publish(config, home=home, store=store)
            assert r.ok, r.summary()
            warm.append(r.seconds)
        after = []
        for k in range(repeats):
            fill(store, 1000, agents, offset=events + k * 1000)
            r = publish(config, home=home, store=store)
            assert r.ok and r.events == events + (k + 1) * 1000, r.summary()
            after.append(r.seconds)
        return {"events": events, "agents": agents, "fill_s": fill_s, "cold_s": cold.seconds,
                "warm_s": statistics.median(warm), "after_1000_s": statistics.median(after),
                "payload_bytes": r.payload_bytes}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--grid", action="store_true", help="also 1M events x 8 agents and 10M x 64 agents")
    args = parser.parse_args(argv)
    gateway, kind, stop = start_gateway()
    try:
        cases = [(args.events, args.agents)]
        if args.grid:
            cases = [(1_000_000, 8), (args.events, args.agents), (args.events, 64)]
        print(f"publishing to a {kind}; median of 5 for warm and +1,000\n")
        print("| events | agents | cold publish s (rollup build) | warm publish s | publish after +1,000 events s "
              "| payload bytes |")
        print("|---|---|---|---|---|---|")
        for events, agents in cases:
            m = measure(events, agents, gateway)
            print(f"| {m['events']:,} | {m['agents']} | {m['cold_s']:.3f} | {m['warm_s']:.3f} | "
                  f"{m['after_1000_s']:.3f} | {m['payload_bytes']:,} |", flush=True)
    finally:
        stop()


if __name__ == "__main__":
    main()
