"""The allocation domain's tables and the reads it needs, through ``agent_pipeline.store.Store``.

``allocator_quotas`` holds one row per agent per period; the latest period is the one in force (the scheduler
launches runs from it, the execution gate sizes orders with its ``capital_usd``). Since schema v2 each row also
says why: ``status`` (capped / at minimum / held back / allocated), ``slots_won`` beyond ``min_runs``, and the
policy's ``estimate`` of the agent's mean reward with its 90 % interval. ``allocator_decisions`` holds one JSON
decision record per period, with the runs ``held_back`` beside the ``shortfall``. A re-decision of a period
replaces that period's rows (idempotent).

Rewards are read incrementally: only each agent's last ``window`` finite rewards up to the decision time, from
``agent_rewards`` (the rewards domain) or, before that table exists, from ``agent_events``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent_pipeline.allocation.decision import record_json
from agent_pipeline.allocation.result import Allocation
from agent_pipeline.numbers import finite_number
from agent_pipeline.store import Schema, begin, has_table, insert_sql

ALLOCATION = Schema("allocation", [
    """
    CREATE TABLE allocator_quotas (
        period_start TIMESTAMPTZ NOT NULL,
        agent VARCHAR NOT NULL,
        strategy VARCHAR,
        kind VARCHAR,
        quota INTEGER NOT NULL,
        capital_usd DOUBLE NOT NULL,
        score DOUBLE,
        policy VARCHAR NOT NULL,
        decided_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (period_start, agent)
    );
    CREATE TABLE allocator_decisions (
        period_start TIMESTAMPTZ PRIMARY KEY,
        policy VARCHAR NOT NULL,
        seed BIGINT,
        shortfall INTEGER NOT NULL,
        decided_at TIMESTAMPTZ NOT NULL,
        record JSON NOT NULL
    );
    """,
    # v2: why each agent got what it got, and the runs held back on purpose (NULL on rows decided before v2)
    """
    ALTER TABLE allocator_quotas ADD COLUMN status VARCHAR;
    ALTER TABLE allocator_quotas ADD COLUMN min_runs INTEGER;
    ALTER TABLE allocator_quotas ADD COLUMN max_runs INTEGER;
    ALTER TABLE allocator_quotas ADD COLUMN slots_won INTEGER;
    ALTER TABLE allocator_quotas ADD COLUMN estimate DOUBLE;
    ALTER TABLE allocator_quotas ADD COLUMN estimate_low DOUBLE;
    ALTER TABLE allocator_quotas ADD COLUMN estimate_high DOUBLE;
    ALTER TABLE allocator_decisions ADD COLUMN held_back INTEGER;
    ALTER TABLE allocator_decisions ADD COLUMN value_floor DOUBLE;
    """,
])

QUOTA_COLUMNS = ("period_start", "agent", "strategy", "kind", "quota", "capital_usd", "score", "policy", "decided_at",
                 "status", "min_runs", "max_runs", "slots_won", "estimate", "estimate_low", "estimate_high")
DECISION_COLUMNS = ("period_start", "policy", "seed", "shortfall", "decided_at", "record", "held_back", "value_floor")


def reward_table(conn) -> str | None:
    """``agent_rewards`` when the rewards domain has created it, else ``agent_events``, else None."""
    for table in ("agent_rewards", "agent_events"):
        if has_table(conn, table):
            return table
    return None


def read_recent_rewards(conn, agents: Sequence[str], window: int, until: datetime,
                        since: datetime | None = None) -> tuple[list[tuple[str, float]], str | None]:
    """Each agent's last ``window`` finite rewards started in ``[since, until]``, oldest first.

    Failed runs (NULL reward, or an error in agent_events) are not rewards and are left out. ``since`` bounds the
    scan (DuckDB skips row groups by their started_at range), so a decision never reads the whole history.
    """
    source = reward_table(conn)
    if source is None or not agents:
        return [], source
    failed = " AND error IS NULL" if source == "agent_events" else ""
    placeholders = ", ".join("?" for _ in agents)
    rows = conn.execute(  # a ranked subquery rather than QUALIFY: the same SQL on every backend
        f"""
        SELECT agent, reward FROM (
            SELECT agent, reward, started_at, event_id,
                   row_number() OVER (PARTITION BY agent ORDER BY started_at DESC, event_id DESC) AS recency
            FROM {source}
            WHERE reward IS NOT NULL AND isfinite(reward){failed}
              AND agent IN ({placeholders}) AND started_at <= ? AND started_at >= ?
        ) AS ranked
        WHERE recency <= ?
        ORDER BY started_at, event_id
        """,
        [*agents, until, since if since is not None else datetime(1970, 1, 1, tzinfo=UTC), window],
    ).fetchall()
    return [(str(a), float(r)) for a, r in rows], source


def write_decision(conn, period_start: datetime, decided_at: datetime, allocation: Allocation,
                   agents: Mapping[str, tuple[str, str]], record: Mapping[str, Any]) -> None:
    """Replace the period's quota rows and decision record, in one transaction of its own."""
    rows = []
    for agent, quota in allocation.quotas.items():
        kind, strategy = agents[agent]
        why = allocation.explanations.get(agent, {})
        rows.append([period_start, agent, strategy, kind, int(quota), float(allocation.capital.get(agent, 0.0)),
                     finite_number(allocation.scores.get(agent)), allocation.policy, decided_at,
                     why.get("status"), why.get("min_runs"), why.get("max_runs"), why.get("slots_won"),
                     finite_number(why.get("estimate")), finite_number(why.get("low")),
                     finite_number(why.get("high"))])
    decision = [period_start, allocation.policy, record.get("seed"), int(allocation.shortfall), decided_at,
                record_json(record), int(allocation.held_back),
                allocation.value_floor]
    with begin(conn):
        conn.execute("DELETE FROM allocator_quotas WHERE period_start = ?", [period_start])
        conn.execute("DELETE FROM allocator_decisions WHERE period_start = ?", [period_start])
        if rows:
            conn.executemany(insert_sql("allocator_quotas", QUOTA_COLUMNS), rows)
        conn.execute(insert_sql("allocator_decisions", DECISION_COLUMNS), decision)


@dataclass(frozen=True)
class QuotaInForce:
    """One agent's row of the period in force; a field is None when the table has no such column."""

    agent: str
    quota: int | None
    capital_usd: float | None
    decided_at: datetime | None = field(default=None, compare=False)  # when, not what, was decided


def period_in_force(conn) -> tuple[datetime | None, list[QuotaInForce]]:
    """The latest decided period's start and its rows, by agent (``(None, [])`` before any decision).

    The one reader of "the allocation period in force": the scheduler launches runs from its quotas, the
    execution gate sizes orders with its capital and the metrics publish both.
    """
    if not has_table(conn, "allocator_quotas"):
        return None, []
    result = conn.execute("SELECT * FROM allocator_quotas "
                          "WHERE period_start = (SELECT max(period_start) FROM allocator_quotas) ORDER BY agent")
    names = [d[0] for d in result.description]
    rows = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    if not rows:
        return None, []
    quotas = [QuotaInForce(str(r["agent"]), None if r.get("quota") is None else int(r["quota"]),
                           None if r.get("capital_usd") is None else float(r["capital_usd"]), r.get("decided_at"))
              for r in rows]
    return rows[0]["period_start"], quotas


def capital_in_force(conn, agent: str) -> tuple[float | None, bool]:
    """(capital, decided): the agent's capital in the period in force, and whether the allocator decided it."""
    rows = [row for row in period_in_force(conn)[1] if row.agent == agent]
    if not rows:
        return None, False
    known = [row.capital_usd for row in rows if row.capital_usd is not None]  # one row per agent: the table's key
    return (float(sum(known)) if known else None), True
