"""Read the rest of the loop's state for metrics: gate decisions, orders, fills, PnL, quotas, reward distributions
and the kill switch.

Other domains own these tables and build them concurrently, so every reader is defensive: a missing table, a
missing column or a missing module means "no series yet", never an exception. Counters come from row counts of
append-only tables, so they are cumulative like the event counters.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from agent_pipeline.numbers import finite_number

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One value of one metric (``name`` as in ``spec.METRICS``)."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


def _columns(conn, table: str) -> set[str]:
    rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()
    return {r[0] for r in rows}


def _needs(conn, table: str, *cols: str) -> set[str] | None:
    have = _columns(conn, table)
    if not have:
        return None
    missing = set(cols) - have
    if missing:
        log.warning("metrics: table %s lacks column(s) %s; its series are skipped", table, sorted(missing))
        return None
    return have


def _safe(reader):
    def wrapped(conn) -> list[Sample]:
        try:
            return list(reader(conn))
        except Exception as exc:  # another domain's table in an unexpected shape: no series, not a failed publish
            log.warning("metrics: %s failed (%s); its series are skipped", reader.__name__, exc)
            return []
    wrapped.__name__ = reader.__name__
    return wrapped


def _agent(value) -> str:
    return "" if value is None else str(value)


@_safe
def gate_decisions(conn) -> Iterable[Sample]:
    if _needs(conn, "gate_decisions", "agent", "approved", "reason_code") is None:
        return
    rows = conn.execute("SELECT agent, approved, reason_code, count(*) FROM gate_decisions "
                        "GROUP BY ALL ORDER BY ALL").fetchall()
    outcomes: dict[tuple[str, str], int] = {}
    for agent, approved, reason_code, n in rows:
        outcome = "approved" if approved else "denied"
        outcomes[(_agent(agent), outcome)] = outcomes.get((_agent(agent), outcome), 0) + int(n)
        if not approved:
            yield Sample("trading_guardrail_denials_total",
                         (("agent", _agent(agent)), ("reason_code", str(reason_code or "UNKNOWN"))), float(n))
    for (agent, outcome), n in sorted(outcomes.items()):
        yield Sample("trading_gate_decisions_total", (("agent", agent), ("outcome", outcome)), float(n))


def _count_by_agent(conn, table: str, metric: str) -> Iterable[Sample]:
    cols = _needs(conn, table)
    if cols is None:
        return
    if "agent" in cols:
        rows = conn.execute(f"SELECT agent, count(*) FROM {table} GROUP BY agent ORDER BY agent").fetchall()
    else:
        rows = [("", conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])]
    for agent, n in rows:
        yield Sample(metric, (("agent", _agent(agent)),), float(n))


@_safe
def orders(conn) -> Iterable[Sample]:
    return _count_by_agent(conn, "orders", "trading_orders_total")


@_safe
def fills(conn) -> Iterable[Sample]:
    """Fills carry no agent; their order does (fills.order_id -> orders.agent). Legs of one order each count."""
    cols = _needs(conn, "fills")
    if cols is None:
        return
    if "agent" not in cols and "order_id" in cols and {"order_id", "agent"} <= _columns(conn, "orders"):
        rows = conn.execute("SELECT o.agent, count(*) FROM fills f LEFT JOIN orders o USING (order_id) "
                            "GROUP BY o.agent ORDER BY o.agent").fetchall()
        for agent, n in rows:
            yield Sample("trading_fills_total", (("agent", _agent(agent)),), float(n))
        return
    yield from _count_by_agent(conn, "fills", "trading_fills_total")


@_safe
def daily_pnl(conn) -> Iterable[Sample]:
    if _needs(conn, "daily_pnl", "trading_date", "realized_pnl_usd") is None:
        return
    today, total = conn.execute(
        "SELECT sum(realized_pnl_usd) FILTER (WHERE trading_date = (SELECT max(trading_date) FROM daily_pnl)), "
        "sum(realized_pnl_usd) FROM daily_pnl").fetchone()
    if total is None:
        return
    yield Sample("trading_realized_pnl_usd", (("period", "today"),), float(today or 0.0))
    yield Sample("trading_realized_pnl_usd", (("period", "cumulative"),), float(total))


@_safe
def allocator_quotas(conn) -> Iterable[Sample]:
    if _needs(conn, "allocator_quotas", "period_start", "agent", "quota", "capital_usd") is None:
        return
    rows = conn.execute(
        "SELECT agent, sum(quota), sum(capital_usd) FROM allocator_quotas "
        "WHERE period_start = (SELECT max(period_start) FROM allocator_quotas) GROUP BY agent ORDER BY agent"
    ).fetchall()
    for agent, quota, capital in rows:
        labels = (("agent", _agent(agent)),)
        if quota is not None:
            yield Sample("allocator_quota_runs", labels, float(quota))
        if capital is not None:
            yield Sample("allocator_capital_usd", labels, float(capital))
    if "decided_at" in _columns(conn, "allocator_quotas"):
        (decided,) = conn.execute(
            "SELECT epoch_us(max(decided_at)) FROM allocator_quotas "
            "WHERE period_start = (SELECT max(period_start) FROM allocator_quotas)").fetchone()
        if decided is not None:
            yield Sample("allocator_decided_at_timestamp_seconds", (), decided / 1e6)


@_safe
def reward_distributions(conn) -> Iterable[Sample]:
    """Per agent and window: mean, win rate, and the std and n that the reward-collapse alert compares with."""
    cols = _needs(conn, "reward_distributions", "agent", "window", "mean", "win_rate")
    if cols is None:
        return
    order = "computed_at" if "computed_at" in cols else ("window_end" if "window_end" in cols else "1")
    optional = [(c, metric) for c, metric in (("std", "agent_reward_rolling_std"), ("n", "agent_reward_rolling_runs"))
                if c in cols]
    extra = "".join(f", arg_max({c}, {order})" for c, _ in optional)
    rows = conn.execute(
        f'SELECT agent, "window", arg_max(mean, {order}), arg_max(win_rate, {order}){extra} '
        'FROM reward_distributions GROUP BY agent, "window" ORDER BY agent, "window"').fetchall()
    for agent, window, *values in rows:
        labels = (("agent", _agent(agent)), ("window", str(window)))
        metrics = ["agent_reward_rolling_mean", "agent_reward_win_rate", *(m for _, m in optional)]
        for metric, v in zip(metrics, values, strict=True):
            v = finite_number(v)
            if v is not None:
                yield Sample(metric, labels, v)


KILL_SWITCH_STATES = ("ACTIVE", "REDUCING", "HALTED")

TABLE_READERS = (gate_decisions, orders, fills, daily_pnl, allocator_quotas, reward_distributions)


def configured_expectations(expectations, samples: Iterable[Sample]) -> list[Sample]:
    """What the alert rules compare the measured series with, from the settings the pipeline runs on
    (``metrics.config.AlertInputs``): the reward-collapse parameters of the Dagster check, the allocation period,
    and each agent's expected run interval (period / quota, as the scheduler spreads a quota evenly; no series for
    quota 0). None gives none of these series, so a rule never compares with a made-up threshold."""
    if expectations is None:
        return []
    period_s = expectations.period_minutes * 60.0
    out = [Sample("agent_reward_collapse_min_runs", (), float(expectations.collapse_min_runs)),
           Sample("agent_reward_collapse_drop_std", (), float(expectations.collapse_drop_std)),
           Sample("agent_reward_collapse_min_drop", (), float(expectations.collapse_min_drop)),
           Sample("allocator_period_seconds", (), period_s)]
    out += [Sample("agent_expected_run_interval_seconds", s.labels, period_s / s.value)
            for s in samples if s.name == "allocator_quota_runs" and s.value > 0]
    return out


def kill_switch(home: Path) -> list[Sample]:
    """The persisted kill switch, read through the trading domain's own reader (which fails closed)."""
    try:
        from agent_pipeline.trading import KillSwitch
    except ImportError:
        try:
            from agent_pipeline.trading.kill_switch import KillSwitch
        except ImportError:
            return []
    try:
        switch = KillSwitch(home / "kill_switch.json")
        status = switch.status() if hasattr(switch, "status") else switch
        enabled = bool(status.enabled)
        state = str(getattr(getattr(status, "state", None), "value", getattr(status, "state", "")) or "")
    except Exception as exc:
        log.warning("metrics: kill switch unreadable (%s); its series are skipped", exc)
        return []
    out = [Sample("trading_kill_switch_engaged", (), 1.0 if enabled else 0.0)]
    if state:
        out += [Sample("trading_kill_switch_state", (("state", s),), 1.0 if state == s else 0.0)
                for s in KILL_SWITCH_STATES]
    return out
