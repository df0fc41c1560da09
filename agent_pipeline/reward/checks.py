"""Data guards on reward history, as plain functions returning an outcome (the Dagster checks call these).

- ``finite_rewards``: no NaN or infinite reward in agent_rewards (NULL means "no reward": a failed run).
- ``plausible_range``: every reward within the configured [min_reward, max_reward].
- ``freshness``: the newest event in agent_events is at most ``freshness_hours`` old.
- ``reward_collapse``: no agent's reward collapsed by the one rule of ``reward.collapse`` (``[reward.collapse]``),
  judged on the repriced rewards the allocator reads (the allocator must not build on a collapsed distribution).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from agent_pipeline.reward.collapse import BASELINE_WINDOW, RECENT_WINDOW, Collapse, WindowStats, judge, stats
from agent_pipeline.reward.config import CollapseConfig, RewardHistoryConfig
from agent_pipeline.store import time_window
from agent_pipeline.store.events import UNDATED_IMPORT_SOURCE


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _window_sql(start: datetime | None, end: datetime | None) -> tuple[str, list[Any]]:
    where, params = time_window(start, end)
    return (" AND " + " AND ".join(where)) if where else "", params


def finite_rewards(conn, start: datetime | None = None, end: datetime | None = None) -> CheckOutcome:
    clause, params = _window_sql(start, end)
    rows = conn.execute(
        f"""SELECT agent, count(*) FROM agent_rewards
            WHERE reward IS NOT NULL AND NOT isfinite(reward){clause} GROUP BY agent ORDER BY agent""",
        params).fetchall()
    bad = sum(int(n) for _, n in rows)
    if bad:
        return CheckOutcome(False, f"{bad} non-finite reward(s) in agent_rewards",
                            {"non_finite": bad, "by_agent": {a: int(n) for a, n in rows}})
    return CheckOutcome(True, "every reward is finite (or NULL for a failed run)", {"non_finite": 0})


def plausible_range(conn, config: RewardHistoryConfig, start: datetime | None = None,
                    end: datetime | None = None) -> CheckOutcome:
    clause, params = _window_sql(start, end)
    low, high = config.min_reward, config.max_reward
    rows = conn.execute(
        f"""SELECT event_id, agent, started_at, reward FROM agent_rewards
            WHERE isfinite(reward) AND (reward < ? OR reward > ?){clause}
            ORDER BY abs(reward) DESC""", [low, high, *params]).fetchall()
    meta: dict[str, Any] = {"min_reward": low, "max_reward": high, "outside": len(rows)}
    if rows:
        meta["worst"] = [{"event_id": e, "agent": a, "started_at": str(t), "reward": r} for e, a, t, r in rows[:5]]
        return CheckOutcome(False, f"{len(rows)} reward(s) outside [{low}, {high}]", meta)
    return CheckOutcome(True, f"every reward within [{low}, {high}]", meta)


def freshness(conn, config: RewardHistoryConfig, now: datetime) -> CheckOutcome:
    # an imported line without a time of its own carries the file's modification time: no sign of fresh events
    newest = conn.execute("SELECT max(started_at) FROM agent_events WHERE source <> ?",
                          [UNDATED_IMPORT_SOURCE]).fetchone()[0]
    limit = timedelta(hours=config.freshness_hours)
    if newest is None:
        return CheckOutcome(False, "no events at all", {"freshness_hours": config.freshness_hours})
    age = now - newest
    meta = {"newest_event": str(newest), "age_hours": round(age.total_seconds() / 3600, 3),
            "freshness_hours": config.freshness_hours}
    if age > limit:
        return CheckOutcome(False, f"newest event is {age} old (limit {limit})", meta)
    return CheckOutcome(True, f"newest event is {age} old (limit {limit})", meta)


def collapsed_agents(distributions: pd.DataFrame, config: CollapseConfig) -> list[Collapse]:
    """The agents whose distributions break the one collapse rule (``reward.collapse``), by name."""
    if distributions.empty:
        return []
    by = {(r.agent, r.window): r for r in distributions.itertuples(index=False)}
    none = WindowStats(0, None)
    out = []
    for agent in sorted(set(distributions["agent"])):
        recent, base = by.get((agent, RECENT_WINDOW)), by.get((agent, BASELINE_WINDOW))
        verdict = judge(agent, stats(recent.n, recent.mean) if recent is not None else none,
                        stats(base.n, base.mean, base.std) if base is not None else none, config)
        if verdict is not None:
            out.append(verdict)
    return out


def reward_collapse(distributions: pd.DataFrame, config: CollapseConfig) -> CheckOutcome:
    collapsed = collapsed_agents(distributions, config)
    meta: dict[str, Any] = {"recent_window": RECENT_WINDOW, "baseline_window": BASELINE_WINDOW,
                            "min_runs": config.min_runs, "drop_std": config.drop_std,
                            "min_drop": config.min_drop, "floor": config.floor,
                            "collapsed": [c.agent for c in collapsed]}
    if collapsed:
        meta["details"] = [c.as_dict() for c in collapsed]
        names = ", ".join(c.agent for c in collapsed)
        return CheckOutcome(False, f"reward collapsed for {names}: allocation must not build on these "
                                   "distributions", meta)
    return CheckOutcome(True, "no agent's recent reward collapsed below its baseline", meta)


def finite_distributions(distributions: pd.DataFrame) -> CheckOutcome:
    """No infinite statistic (empty statistics of a window without runs come back as NaN/NULL and are fine)."""
    numeric = distributions.select_dtypes("number").to_numpy(dtype=float, na_value=np.nan)
    bad = int(np.isinf(numeric).sum())
    if bad:
        return CheckOutcome(False, f"{bad} infinite statistic(s) in reward_distributions", {"non_finite": bad})
    return CheckOutcome(True, "every statistic is finite (or empty for a window without runs)", {"non_finite": 0})
