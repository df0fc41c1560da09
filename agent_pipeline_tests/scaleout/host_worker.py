"""One worker process of one host: runs agent-shaped work against the shared store for a bounded time.

Usage: ``python host_worker.py runs|watch SECONDS NAME``, with ``AGENT_PIPELINE_HOME`` (the host's own folder) and
``AGENT_PIPELINE_STORE_URL`` (the shared database) set. It loads the settings as the pipeline does, so it reaches
the store and the kill switch the configuration names, and prints one JSON line with what it did.

- ``runs``: each run stores its event and sends one trade proposal through the execution gate;
- ``watch``: reads the kill switch every 20 ms until it reads HALTED; prints when it first did.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime

from agent_pipeline.market import SimulatedMarket
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.store import AgentEvent, Store, append_event
from agent_pipeline.trading.config import ExecutionConfig, GuardrailConfig
from agent_pipeline.trading.execution import ExecutionLayer
from agent_pipeline.trading.kill_switch import default_path
from agent_pipeline.trading.kill_switch_store import kill_switch_for

ORDERS_PER_WINDOW = 7  # the global rate limit every host's gate enforces together


def proposal(market: SimulatedMarket) -> dict:
    quote = {(q.venue, q.symbol): q for q in market.quotes(datetime.now(UTC))}[("sim_a", "BTC-USD")]
    return {"notional_usd": 50.0, "expected_edge_bps": 25.0, "spread_bps": 5.0, "slippage_bps": 3.0,
            "data_age_sec": 1.0, "paper": True, "symbol": "BTC-USD", "side": "buy", "venue": "sim_a",
            "price": quote.ask, "size": 50.0 / quote.ask, "quote_size": 2.0, "confidence": 0.8,
            "reference_price": quote.mid, "profit_pct": 0.25}


def runs(seconds: float, name: str) -> dict:
    settings = Settings.load()
    store = Store(settings.store_location)
    market = SimulatedMarket(fault_rate=0.0, stale_prob=0.0)
    guardrails = GuardrailConfig(max_orders_per_window=ORDERS_PER_WINDOW, rate_window_sec=3600.0)
    layer = ExecutionLayer(store, market, guardrails=guardrails, execution=ExecutionConfig(default_capital_usd=1e4),
                           kill_switch=kill_switch_for(settings.store.url, default_path()))
    events, approved, reasons = [], 0, {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        event = AgentEvent(run_id=f"{name}-{len(events)}", agent="momentum", strategy="momentum", kind="signal",
                           started_at=datetime.now(UTC), latency_seconds=0.001, reward=0.1, source="dagster")
        append_event(store, event)
        events.append(event.event_id)
        report = layer.execute({"agent": "momentum", "strategy": "momentum", "event_id": event.event_id,
                                "output": [proposal(market)]}, run_id=event.run_id)
        approved += report.approved
        for code, n in report.by_reason.items():
            reasons[code] = reasons.get(code, 0) + n
    return {"events": events, "approved": approved, "reasons": reasons, "store": store.location}


def watch(seconds: float, name: str) -> dict:
    settings = Settings.load()
    switch = kill_switch_for(settings.store.url, default_path())
    checks, deadline = 0, time.monotonic() + seconds
    print(json.dumps({"ready": switch.state.value}), flush=True)
    while time.monotonic() < deadline:
        status = switch.status()
        checks += 1
        if status.state.value == "HALTED":
            return {"halted_at": time.time(), "reason": status.reason, "checks": checks}
        time.sleep(0.02)
    return {"halted_at": None, "checks": checks}


if __name__ == "__main__":
    mode, seconds, name = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    print(json.dumps((runs if mode == "runs" else watch)(seconds, name)), flush=True)
