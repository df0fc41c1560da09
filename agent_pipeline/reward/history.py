"""Reward history: reprice stored events with the current reward configuration, one time window at a time.

``agent_rewards`` holds one row per event with the reward it earns under the configuration in force when the
window was last recomputed. Recomputing a window deletes its rows and inserts them again in one transaction, so
a backfill over any range is idempotent and a changed parameter reprices exactly what it touches.

How each event's reward is decided (``pricing``):
- ``recomputed``: the raw output is priced again with ``score_output`` (the one place a reward is decided), net
  of the event's own ``cost_usd`` when ``[reward] charge_run_cost`` is on (an unknown cost charges nothing);
- ``recorded``: an imported event with a reward but no raw output keeps the reward it was recorded with (how
  that reward treated costs is the recording system's business, so nothing is subtracted);
- ``failed``: the run failed, so it has no reward (NULL), but it still counts towards the error rate;
- ``invalid``: a recorded reward that is NaN or infinite, or a stored cost that is NaN, infinite or negative
  while costs are charged, is dropped (NULL) so it never reaches a distribution;
- ``unusable_output``: the stored output cannot be read (not JSON, or past the caps of ``output_bounds``), so it
  is priced as an unusable output (what ``score_output`` gives one: nothing gained, the run's cost charged)
  instead of failing the window on every repricing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from agent_pipeline import output_bounds
from agent_pipeline.numbers import finite_number
from agent_pipeline.reward.config import RewardConfig
from agent_pipeline.reward.scoring import score_output
from agent_pipeline.store import Schema, Store, query_df, time_window
from agent_pipeline.store.events import EVENTS

REWARDS = Schema("rewards", requires=(EVENTS,), migrations=[
    # v1: the repriced history and the latest distribution snapshot. No unique index on agent_rewards.event_id:
    # a window is always deleted and re-inserted whole, which keeps the rewrite idempotent without one.
    """
    CREATE TABLE agent_rewards (
        event_id VARCHAR NOT NULL,
        agent VARCHAR NOT NULL,
        strategy VARCHAR,
        kind VARCHAR,
        started_at TIMESTAMPTZ NOT NULL,
        reward DOUBLE,
        reward_source VARCHAR NOT NULL,
        params_hash VARCHAR,
        computed_at TIMESTAMPTZ NOT NULL,
        failed BOOLEAN NOT NULL,
        cost_usd DOUBLE,
        latency_seconds DOUBLE
    );
    CREATE TABLE reward_distributions (
        agent VARCHAR NOT NULL,
        "window" VARCHAR NOT NULL,
        n BIGINT NOT NULL,
        mean DOUBLE,
        std DOUBLE,
        p05 DOUBLE,
        p25 DOUBLE,
        p50 DOUBLE,
        p75 DOUBLE,
        p95 DOUBLE,
        cvar05 DOUBLE,
        win_rate DOUBLE,
        error_rate DOUBLE,
        mean_cost_usd DOUBLE,
        p95_latency_seconds DOUBLE,
        window_start TIMESTAMPTZ,
        window_end TIMESTAMPTZ,
        computed_at TIMESTAMPTZ NOT NULL,
        runs BIGINT NOT NULL,
        errors BIGINT NOT NULL
    );
    """,
    # v2: ``reward_source`` named how the reward was priced, not a source: renamed ``pricing``.
    """
    ALTER TABLE agent_rewards RENAME COLUMN reward_source TO pricing;
    """,
])

COLUMNS = ("event_id", "agent", "strategy", "kind", "started_at", "reward", "pricing", "params_hash",
           "computed_at", "failed", "cost_usd", "latency_seconds")


def params_hash(config: RewardConfig) -> str:
    """A short, stable fingerprint of the pricing parameters (not of the check thresholds)."""
    body = json.dumps(config.as_dict(), sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RecomputeResult:
    """What one window rewrite did."""

    start: datetime
    end: datetime
    deleted: int
    inserted: int
    by_pricing: dict[str, int]
    changed: int
    params_hash: str

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.by_pricing.items()))
        return (f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC: {self.inserted} rewards "
                f"({parts}); {self.changed} changed; {self.deleted} replaced")


def _load_events(conn, start: datetime, end: datetime) -> pd.DataFrame:
    return query_df(conn,
        """SELECT event_id, agent, strategy, kind, started_at, reward, origin, error, CAST(output AS VARCHAR)
                  AS output, cost_usd, cost_usd IS NULL AS cost_unknown, latency_seconds
           FROM agent_events WHERE started_at >= ? AND started_at < ?""", [start, end])


def _run_cost(cost: Any, unknown: bool) -> float | None:
    """The event's cost as a usable number, 0.0 when unknown (NULL), None when stored but unusable."""
    if unknown:
        return 0.0
    number = finite_number(cost)
    return number if number is not None and number >= 0 else None


def price_events(events: pd.DataFrame, config: RewardConfig) -> tuple[list[float | None], list[str]]:
    """Reward and pricing for each event row (see the module docstring for the rules)."""
    rewards: list[float | None] = []
    sources: list[str] = []
    cache: dict[tuple[str | None, str, float], tuple[float, str]] = {}
    for agent, strategy, recorded, origin, error, output, cost, cost_unknown in zip(
            events["agent"], events["strategy"], events["reward"], events["origin"], events["error"],
            events["output"], events["cost_usd"], events["cost_unknown"], strict=True):
        strategy = None if pd.isna(strategy) else strategy
        run_cost = _run_cost(cost, bool(cost_unknown)) if config.charge_run_cost else 0.0
        if not pd.isna(error):
            rewards.append(None)
            sources.append("failed")
        elif pd.isna(output) and origin == "imported":
            value = None if pd.isna(recorded) else finite_number(float(recorded))
            if value is not None:
                rewards.append(value)
                sources.append("recorded")
            else:
                rewards.append(None)
                sources.append("invalid")
        elif run_cost is None:
            rewards.append(None)
            sources.append("invalid")
        else:
            key = (strategy, "" if pd.isna(output) else output, run_cost)
            if key not in cache:
                parsed, usable = (None, True) if pd.isna(output) else _parse_output(output)
                cache[key] = (score_output(agent, strategy, parsed, config, cost_usd=run_cost)[0],
                              "recomputed" if usable else "unusable_output")
            reward, source = cache[key]
            rewards.append(reward)
            sources.append(source)
    return rewards, sources


def _parse_output(text: str) -> tuple[object, bool]:
    """A stored output and whether it could be read; past the caps it is not parsed at all (no recursion)."""
    if output_bounds.text_problem(text) is not None:
        return None, False
    try:
        return json.loads(text), True
    except ValueError:
        return None, False


def recompute_window(store: Store, start: datetime, end: datetime, config: RewardConfig,
                     *, timeout_s: float | None = None) -> RecomputeResult:
    """Rewrite ``agent_rewards`` for events with ``start <= started_at < end`` (delete the window, insert)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("recompute_window needs timezone-aware start and end")
    if end <= start:
        raise ValueError(f"empty window: end {end} is not after start {start}")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    digest = params_hash(config)
    computed_at = datetime.now(UTC)

    with store.connect(timeout_s=timeout_s) as conn:
        REWARDS.ensure(store, conn)
        events = _load_events(conn, start, end)
    rewards, sources = price_events(events, config)  # outside the lock: pricing can take a while
    frame = pd.DataFrame({
        "event_id": events["event_id"].astype(object), "agent": events["agent"].astype(object),
        "strategy": events["strategy"].astype(object), "kind": events["kind"].astype(object),
        "started_at": events["started_at"], "reward": pd.array(rewards, dtype="Float64"),
        "pricing": pd.array(sources, dtype=object), "failed": [s == "failed" for s in sources],
        "cost_usd": events["cost_usd"], "latency_seconds": events["latency_seconds"],
        "params_hash": digest, "computed_at": computed_at,
    })

    with store.transaction(timeout_s=timeout_s, schema=REWARDS) as conn:
        before = dict(conn.execute(
            "SELECT event_id, reward FROM agent_rewards WHERE started_at >= ? AND started_at < ?",
            [start, end]).fetchall())
        deleted = conn.execute("DELETE FROM agent_rewards WHERE started_at >= ? AND started_at < ?",
                               [start, end]).fetchone()[0]
        store.insert_frame(conn, "agent_rewards", frame)

    changed = sum(1 for eid, value in zip(frame["event_id"], rewards, strict=True)
                  if eid not in before or not _same(before[eid], value))
    by_pricing: dict[str, int] = {}
    for s in sources:
        by_pricing[s] = by_pricing.get(s, 0) + 1
    return RecomputeResult(start=start, end=end, deleted=int(deleted), inserted=len(frame), by_pricing=by_pricing,
                           changed=changed, params_hash=digest)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a == b


def read_rewards(store: Store, *, start: datetime | None = None, end: datetime | None = None,
                 read_only: bool = False, timeout_s: float | None = None) -> pd.DataFrame:
    """Rows of agent_rewards (optionally within a window), ordered by time."""
    where, params = time_window(start, end)
    sql = "SELECT * FROM agent_rewards" + (f" WHERE {' AND '.join(where)}" if where else "") + \
        " ORDER BY started_at, event_id"
    return store.read_frame(sql, params, table="agent_rewards", columns=COLUMNS, schema=REWARDS,
                            read_only=read_only, timeout_s=timeout_s)
