"""Shared helpers for the metrics tests: write events, build the loop's tables in their owners' schemas, parse
expositions, count the truth in DuckDB."""

from __future__ import annotations

import math
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from agent_pipeline.metrics.spec import HISTOGRAMS
from agent_pipeline.store import AgentEvent, Store, append_event

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(agent: str, i: int = 0, *, latency=0.2, cost=0.001, reward=0.3, error=None) -> AgentEvent:
    return AgentEvent(run_id=f"run-{agent}-{i}", agent=agent, started_at=T0 + timedelta(seconds=i),
                      latency_seconds=latency, cost_usd=cost, reward=None if error else reward, error=error)


def write(store: Store, *events: AgentEvent) -> None:
    for e in events:
        append_event(store, e)


_HOLDER = """
import sys
from agent_pipeline.store import Store
with Store.at_home().connect():
    print("held", flush=True)
    sys.stdin.read()
"""


@contextmanager
def held_store() -> Iterator[subprocess.Popen]:
    """Another process holds the store (its lock and the DuckDB file) for the block, like a long write."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held", "the holder could not take the store"
        yield holder
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def loop_tables(store: Store) -> None:
    """The loop's tables as the trading, allocation and rewards domains create them (their own migrations)."""
    from agent_pipeline.allocation.tables import ALLOCATION
    from agent_pipeline.reward.history import REWARDS
    from agent_pipeline.trading.tables import TRADING

    with store.connect() as conn:
        for schema in (TRADING, ALLOCATION, REWARDS):
            schema.ensure(store, conn)


def insert(conn, table: str, **values) -> None:
    columns = ", ".join(f'"{c}"' for c in values)
    conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' for _ in values)})",
                 list(values.values()))


def gate_decision(conn, agent: str, approved: bool, reason_code: str, n: int = 1) -> None:
    for _ in range(n):
        insert(conn, "gate_decisions", decision_id=uuid.uuid4().hex, decided_at=T0, agent=agent, approved=approved,
               reason_code=reason_code, reason=reason_code.lower())


def order(conn, agent: str, order_id: str | None = None) -> str:
    order_id = order_id or uuid.uuid4().hex
    insert(conn, "orders", order_id=order_id, order_key=order_id, created_at=T0, agent=agent, status="filled")
    return order_id


def fill(conn, order_id: str, leg: int = 0) -> None:
    insert(conn, "fills", fill_id=uuid.uuid4().hex, order_id=order_id, leg=leg, filled_at=T0)


def pnl(conn, trading_date: str, realized_pnl_usd: float) -> None:
    insert(conn, "daily_pnl", trading_date=trading_date, realized_pnl_usd=realized_pnl_usd, loss_usd=0.0, fills=1,
           updated_at=T0)


def quota(conn, period_start: str, agent: str, runs: int, capital_usd: float, decided_at: str | None = None) -> None:
    insert(conn, "allocator_quotas", period_start=period_start, agent=agent, quota=runs, capital_usd=capital_usd,
           policy="ucb", decided_at=decided_at or period_start)


def distribution(conn, agent: str, window: str, *, n: int = 10, mean=None, std=None, win_rate=None,
                 computed_at: str = "2026-01-01") -> None:
    insert(conn, "reward_distributions", agent=agent, window=window, n=n, mean=mean, std=std, win_rate=win_rate,
           computed_at=computed_at, runs=n, errors=0)


def samples(text: str | bytes) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a text exposition."""
    if isinstance(text, bytes):
        text = text.decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(parsed: dict, name: str, **labels) -> float | None:
    return parsed.get((name, tuple(sorted(labels.items()))))


def truth(store: Store) -> dict[str, dict]:
    """Per-agent counts straight from agent_events, computed in Python (independent of the rollup's SQL)."""
    with store.connect(read_only=True, timeout_s=10) as conn:
        rows = conn.execute("SELECT agent, error, latency_seconds, cost_usd, reward FROM agent_events").fetchall()
    out: dict[str, dict] = {}
    for agent, error, latency, cost, reward in rows:
        t = out.setdefault(agent, {"runs": 0, "errors": 0, **{h.name: [] for h in HISTOGRAMS}})
        t["runs"] += 1
        t["errors"] += error is not None
        for h, v in zip(HISTOGRAMS, (latency, cost, reward), strict=True):
            if v is not None and math.isfinite(v):
                t[h.name].append(v)
    return out


def assert_matches_store(parsed: dict, store: Store) -> None:
    """Every counter, histogram bucket, _count and _sum equals what the store holds."""
    for agent, t in truth(store).items():
        assert value(parsed, "agent_runs_total", agent=agent) == t["runs"], agent
        assert value(parsed, "agent_errors_total", agent=agent) == t["errors"], agent
        for h in HISTOGRAMS:
            obs = t[h.name]
            assert value(parsed, f"{h.name}_count", agent=agent) == len(obs), (agent, h.name)
            assert math.isclose(value(parsed, f"{h.name}_sum", agent=agent), sum(obs), abs_tol=1e-9), (agent, h.name)
            for b in h.buckets:
                assert value(parsed, f"{h.name}_bucket", agent=agent, le=str(float(b))) == \
                    sum(1 for v in obs if v <= b), (agent, h.name, b)
            assert value(parsed, f"{h.name}_bucket", agent=agent, le="+Inf") == len(obs)
