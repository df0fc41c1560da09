"""The loop's tables read for metrics: gate decisions, orders, fills, PnL, quotas and reward distributions; plus the
two files beside the store that every exposition reads fresh, the kill switch and the configured thresholds.

Each table's schema lives in this repository (its domain's migrations), so the readers query it as it is. A table
that does not exist yet means "no data yet": counters for the known label sets are 0, gauges are absent. A table
that does not answer (hand-edited into another shape) gives none of its series and a warning, never a made-up
0 that would read as a counter reset. Counters come from row counts of append-only tables, so they are cumulative
like the event counters.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from datetime import date
from pathlib import Path

from agent_pipeline.allocation.tables import period_in_force
from agent_pipeline.metrics.spec import Sample
from agent_pipeline.numbers import finite_number
from agent_pipeline.store import database_errors, has_table
from agent_pipeline.trading.kill_switch import KEY_ENV, KillSwitch, KillSwitchState, default_path
from agent_pipeline.trading.reasons import Reason
from agent_pipeline.trading.secrets import secret

log = logging.getLogger(__name__)

OUTCOMES = ("approved", "denied")
DENIAL_CODES: tuple[str, ...] = tuple(r.value for r in Reason if r is not Reason.OK)
KILL_SWITCH_STATES: tuple[str, ...] = tuple(s.value for s in KillSwitchState)


def _agent(value) -> str:
    return "" if value is None else str(value)


def _counts(conn, tables: tuple[str, ...], sql: str) -> list[tuple]:
    return conn.execute(sql).fetchall() if all(has_table(conn, t) for t in tables) else []


def gate_decisions(conn, agents: Collection[str]) -> list[Sample]:
    """Decisions per agent and outcome, denials per agent and reason code; every known pair at 0 or more."""
    outcomes = Counter({(a, o): 0 for a in agents for o in OUTCOMES})
    denials = Counter({(a, r): 0 for a in agents for r in DENIAL_CODES})
    for agent, approved, reason_code, n in _counts(
            conn, ("gate_decisions",), "SELECT agent, approved, reason_code, count(*) FROM gate_decisions GROUP BY ALL"):
        outcomes[(_agent(agent), "approved" if approved else "denied")] += int(n)
        if not approved:
            denials[(_agent(agent), str(reason_code))] += int(n)
    return ([Sample("trading_gate_decisions_total", (("agent", a), ("outcome", o)), float(n))
             for (a, o), n in sorted(outcomes.items())] +
            [Sample("trading_guardrail_denials_total", (("agent", a), ("reason_code", r)), float(n))
             for (a, r), n in sorted(denials.items())])


def _per_agent(metric: str, agents: Collection[str], rows: list[tuple]) -> list[Sample]:
    counts = Counter({a: 0 for a in agents})
    for agent, n in rows:
        counts[_agent(agent)] += int(n)
    return [Sample(metric, (("agent", a),), float(n)) for a, n in sorted(counts.items())]


def orders(conn, agents: Collection[str]) -> list[Sample]:
    return _per_agent("trading_orders_total", agents,
                      _counts(conn, ("orders",), "SELECT agent, count(*) FROM orders GROUP BY agent"))


def fills(conn, agents: Collection[str]) -> list[Sample]:
    """Fills carry no agent; their order does (fills.order_id -> orders.agent). Legs of one order each count."""
    return _per_agent("trading_fills_total", agents, _counts(
        conn, ("fills", "orders"), "SELECT o.agent, count(*) FROM fills f LEFT JOIN orders o USING (order_id) GROUP BY o.agent"))


def daily_pnl(conn, today: date) -> list[Sample]:
    """Realized PnL of ``today`` (the UTC date now, not the latest date in the table: 0 when nothing filled today)
    and over all dates."""
    if not has_table(conn, "daily_pnl"):
        return []
    today_usd, total_usd = conn.execute(
        "SELECT coalesce(sum(realized_pnl_usd) FILTER (WHERE trading_date = ?), 0), coalesce(sum(realized_pnl_usd), 0) "
        "FROM daily_pnl", [today]).fetchone()
    out = []
    for period, value in (("today", today_usd), ("cumulative", total_usd)):
        number = finite_number(value)
        if number is None:
            log.warning("metrics: daily_pnl sums to %r for period %s; that series is skipped", value, period)
        else:
            out.append(Sample("trading_realized_pnl_usd", (("period", period),), number))
    return out


def allocator_quotas(conn) -> Iterable[Sample]:
    rows = period_in_force(conn)[1]
    for row in rows:
        labels = (("agent", _agent(row.agent)),)
        if row.quota is not None:
            yield Sample("allocator_quota_runs", labels, float(row.quota))
        if row.capital_usd is not None:
            yield Sample("allocator_capital_usd", labels, float(row.capital_usd))
    decided = [row.decided_at for row in rows if row.decided_at is not None]
    if decided:
        yield Sample("allocator_decided_at_timestamp_seconds", (), max(decided).timestamp())


_DISTRIBUTION_METRICS = (("mean", "agent_reward_rolling_mean"), ("win_rate", "agent_reward_win_rate"),
                         ("std", "agent_reward_rolling_std"), ("n", "agent_reward_rolling_runs"))


def reward_distributions(conn, agents: Collection[str]) -> list[Sample]:
    """Per agent of ``agents`` and window, from the latest computation: mean, win rate, and the std and n that the
    reward-collapse alert compares with. Undefined statistics (NULL, NaN) are absent. Distributions are computed for
    every agent in the store, imported ones too; only the known agents get series (no label set per made-up
    name of an imported file)."""
    if not has_table(conn, "reward_distributions"):
        return []
    columns = "".join(f", arg_max({c}, computed_at)" for c, _ in _DISTRIBUTION_METRICS)
    rows = conn.execute(f'SELECT agent, "window"{columns} FROM reward_distributions '
                        'GROUP BY agent, "window" ORDER BY agent, "window"').fetchall()
    out = []
    for agent, window, *values in rows:
        if _agent(agent) not in agents:
            continue
        labels = (("agent", _agent(agent)), ("window", str(window)))
        for (_, metric), v in zip(_DISTRIBUTION_METRICS, values, strict=True):
            v = finite_number(v)
            if v is not None:
                out.append(Sample(metric, labels, v))
    return out


def _answered(read: Callable[..., Iterable[Sample]], conn, *args) -> list[Sample]:
    try:
        return list(read(conn, *args))
    except database_errors() as exc:
        log.warning("metrics: table %s does not answer (%s); its series are skipped", read.__name__, exc)
        return []


def agent_labels(samples: Iterable[Sample]) -> set[str]:
    """Every agent named by these samples (the unnamed "" excluded)."""
    return {value for s in samples for label, value in s.labels if label == "agent" and value}


def read_tables(conn, *, agents: Iterable[str], today: date) -> list[Sample]:
    """Every table's series. ``agents`` (the registry's and those with live runs) and the agents the allocator gave
    quotas get each trading counter at 0 until their first decision, order and fill, so that the first one shows
    in ``increase()``; they are also the only agents whose reward distributions are exported."""
    quotas = _answered(allocator_quotas, conn)
    known = sorted(set(agents) | agent_labels(quotas))
    return [*quotas,
            *_answered(gate_decisions, conn, known), *_answered(orders, conn, known), *_answered(fills, conn, known),
            *_answered(daily_pnl, conn, today), *_answered(reward_distributions, conn, set(known))]


def configured_expectations(expectations, samples: Iterable[Sample]) -> list[Sample]:
    """What the alert rules compare the measured series with, from the settings the pipeline runs on
    (``metrics.config.AlertInputs``): the parameters of the one reward-collapse rule, the allocation period,
    and each agent's expected run interval (period / quota, as the scheduler spreads a quota evenly; no series for
    quota 0). None gives none of these series, so a rule never compares with a made-up threshold."""
    if expectations is None:
        return []
    period_s = expectations.period_minutes * 60.0
    out = [Sample("agent_reward_collapse_min_runs", (), float(expectations.collapse_min_runs)),
           Sample("agent_reward_collapse_drop_std", (), float(expectations.collapse_drop_std)),
           Sample("agent_reward_collapse_min_drop", (), float(expectations.collapse_min_drop)),
           Sample("allocator_period_seconds", (), period_s)]
    if expectations.collapse_floor is not None:  # unset: no series, and the rule's floor branch stays quiet
        out.append(Sample("agent_reward_collapse_floor", (), float(expectations.collapse_floor)))
    out += [Sample("agent_expected_run_interval_seconds", s.labels, period_s / s.value)
            for s in samples if s.name == "allocator_quota_runs" and s.value > 0]
    return out


@functools.lru_cache(maxsize=32)
def _reader(path: Path, key: str) -> KillSwitch:
    # one reader per file (and key) for the life of the process: it refuses a state older than one it has seen,
    # so a long-lived scrape server cannot be shown an old "ACTIVE" file copied back in
    return KillSwitch(path, key=key.encode())


@functools.lru_cache(maxsize=8)
def _database_reader(url: str, key: str):
    # one reader (and its one connection) per database and key for the life of the process, as for the file
    from agent_pipeline.store import Store
    from agent_pipeline.trading.kill_switch_store import DatabaseKillSwitch

    return DatabaseKillSwitch(Store(url), key=key.encode())


def kill_switch(home: Path, store=None) -> list[Sample]:
    """The persisted kill switch, read through the trading domain's reader, which fails closed (a missing,
    damaged, forged or special file reads HALTED). Should the reader itself fail, the export says HALTED too.
    A shared store's switch is the one in its database (``store.shared``), which every host's gate reads."""
    try:
        key = secret(KEY_ENV)  # the key may have been taken from the environment at start
        shared = store is not None and store.shared
        reader = _database_reader(store.url, key) if shared else _reader(default_path(home), key)
        status = reader.status()
        state, enabled = status.state.value, status.enabled
    except Exception as exc:  # never "ACTIVE" for a switch nobody could read
        log.warning("metrics: kill switch unreadable (%s); exported as HALTED", exc)
        state, enabled = KillSwitchState.HALTED.value, True
    return [Sample("trading_kill_switch_engaged", (), 1.0 if enabled else 0.0),
            *(Sample("trading_kill_switch_state", (("state", s),), 1.0 if state == s else 0.0)
              for s in KILL_SWITCH_STATES)]
