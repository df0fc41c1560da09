"""Rolling reward distributions per agent, computed in one DuckDB query over the whole of ``agent_rewards``.

Windows: the last hour, day and week before ``as_of``, and each agent's last N runs (however old). For each agent
and window: ``runs`` (all runs, failed ones included), ``errors`` and ``error_rate``; over the finite rewards
(failed runs and non-finite values never count): ``n``, ``mean``, ``std`` (sample, ddof=1), the quantiles
p05/p25/p50/p75/p95 (linear interpolation, as numpy's default), ``cvar05`` (the mean of the rewards at or below
p05: the expected reward in the worst 5 %), ``win_rate`` (share of rewards > 0); ``mean_cost_usd`` over the
runs that report a cost, and ``p95_latency_seconds``. Every known agent gets a row for every window, with n = 0
and empty statistics when it did not run in that window.

The snapshot replaces the table ``reward_distributions`` as a whole; readers take the rows of the window they
need.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from agent_pipeline.reward.history import REWARDS
from agent_pipeline.store import Store, begin, query_df

TIME_WINDOWS: tuple[tuple[str, timedelta], ...] = (
    ("1h", timedelta(hours=1)),
    ("1d", timedelta(days=1)),
    ("7d", timedelta(days=7)),
)

LOOKBACK_SECONDS = 7 * 24 * 3600

COLUMNS = ("agent", "window", "n", "mean", "std", "p05", "p25", "p50", "p75", "p95", "cvar05", "win_rate",
           "error_rate", "mean_cost_usd", "p95_latency_seconds", "window_start", "window_end", "computed_at",
           "runs", "errors")


def last_runs_window(n: int) -> str:
    return f"last_{n}"


def window_names(last_n_runs: int) -> list[str]:
    return [name for name, _ in TIME_WINDOWS] + [last_runs_window(last_n_runs)]


def _window_starts() -> str:
    return " ".join(f"WHEN '{n}' THEN $as_of - INTERVAL {int(d.total_seconds())} SECOND" for n, d in TIME_WINDOWS)


def distributions_sql(last_n_runs: int) -> str:
    """The query; parameters: as_of (TIMESTAMPTZ), repeated where marked ``$as_of``."""
    if isinstance(last_n_runs, bool) or not isinstance(last_n_runs, int) or last_n_runs < 1:
        raise ValueError(f"last_n_runs must be a positive integer, got {last_n_runs!r}")
    cols = "agent, started_at, CASE WHEN isfinite(reward) THEN reward END AS r, failed, cost_usd, latency_seconds"
    time_parts = "\n    UNION ALL\n".join(
        f"""    SELECT '{name}' AS win, $as_of - INTERVAL {int(span.total_seconds())} SECOND AS w_start,
           $as_of AS w_end,
           {cols}
    FROM agent_rewards WHERE started_at <= $as_of
                         AND started_at > $as_of - INTERVAL {int(span.total_seconds())} SECOND"""
        for name, span in TIME_WINDOWS)
    last = last_runs_window(last_n_runs)
    return f"""
WITH busy AS (  -- agents whose last N runs all fall in the last week: only that week is searched for them
    SELECT agent FROM agent_rewards
    WHERE started_at <= $as_of AND started_at > $as_of - INTERVAL {LOOKBACK_SECONDS} SECOND
    GROUP BY agent HAVING count(*) >= {last_n_runs}
),
candidates AS (  -- name the columns: a SELECT * here would read every column of the whole history
    SELECT agent, started_at, reward, failed, cost_usd, latency_seconds FROM agent_rewards
    WHERE started_at <= $as_of AND started_at > $as_of - INTERVAL {LOOKBACK_SECONDS} SECOND
      AND agent IN (SELECT agent FROM busy)
    UNION ALL
    SELECT agent, started_at, reward, failed, cost_usd, latency_seconds FROM agent_rewards
    WHERE started_at <= $as_of AND agent NOT IN (SELECT agent FROM busy)
),
recent AS (  -- each agent's last N runs: a top-N aggregate per agent, no sort of the history
    SELECT agent, unnest(max_by({{'started_at': started_at, 'reward': reward, 'failed': failed,
                                  'cost_usd': cost_usd, 'latency_seconds': latency_seconds}},
                                started_at, {last_n_runs})) AS e
    FROM candidates GROUP BY agent
),
w AS (
{time_parts}
    UNION ALL
    SELECT '{last}', NULL, NULL, agent, e.started_at, CASE WHEN isfinite(e.reward) THEN e.reward END, e.failed,
           e.cost_usd, e.latency_seconds
    FROM recent
),
stats_raw AS (
    SELECT win, agent,
           count(*) AS runs,
           count(*) FILTER (WHERE failed) AS errors,
           count(r) AS n,
           avg(r) AS mean,
           stddev_samp(r) AS std,
           quantile_cont(r, [0.05, 0.25, 0.5, 0.75, 0.95]) AS q,
           avg(CASE WHEN r > 0 THEN 1.0 WHEN r IS NOT NULL THEN 0.0 END) AS win_rate,
           avg(cost_usd) FILTER (WHERE isfinite(cost_usd)) AS mean_cost_usd,
           quantile_cont(latency_seconds, 0.95) FILTER (WHERE isfinite(latency_seconds)) AS p95_latency_seconds,
           coalesce(any_value(w_start), min(started_at)) AS window_start,
           coalesce(any_value(w_end), max(started_at)) AS window_end,
           list(r) FILTER (WHERE r IS NOT NULL) AS rs
    FROM w GROUP BY win, agent
),
stats AS (  -- interpolating between two equal lowest values can land a hair below them: never an empty tail
    SELECT *, greatest(q[1], list_min(rs)) AS tail_cut FROM stats_raw
),
agents AS (SELECT DISTINCT agent FROM recent),  -- every agent with a run before as_of has a last run
windows AS (
    SELECT * FROM (VALUES {", ".join(f"('{name}', {i})" for i, name in enumerate(window_names(last_n_runs)))})
        AS v(win, ord)
)
SELECT a.agent, ws.win AS "window", coalesce(s.n, 0) AS n, s.mean, s.std,
       s.q[1] AS p05, s.q[2] AS p25, s.q[3] AS p50, s.q[4] AS p75, s.q[5] AS p95,
       list_avg(list_filter(s.rs, lambda x: x <= s.tail_cut)) AS cvar05, s.win_rate,
       CASE WHEN s.runs > 0 THEN s.errors / s.runs END AS error_rate,
       s.mean_cost_usd, s.p95_latency_seconds,
       coalesce(s.window_start, CASE ws.win {_window_starts()} END) AS window_start,
       coalesce(s.window_end, CASE WHEN ws.win IN ({", ".join(f"'{n}'" for n, _ in TIME_WINDOWS)}) THEN $as_of END)
           AS window_end,
       $computed_at AS computed_at,
       coalesce(s.runs, 0) AS runs, coalesce(s.errors, 0) AS errors
FROM agents a CROSS JOIN windows ws
LEFT JOIN stats s ON s.agent = a.agent AND s.win = ws.win
ORDER BY a.agent, ws.ord
"""


def rows_read(as_of: datetime, last_n_runs: int) -> tuple[str, list]:
    """The rows of ``agent_rewards`` the query reads (portable SQL): the last week before ``as_of``, and each
    agent's last N runs however old. A store that is not DuckDB copies just these into DuckDB to run it."""
    return (f"""SELECT event_id, agent, strategy, kind, started_at, reward, pricing, params_hash, computed_at, failed,
                      cost_usd, latency_seconds
               FROM (SELECT *, row_number() OVER (PARTITION BY agent ORDER BY started_at DESC) AS recency
                     FROM agent_rewards WHERE started_at <= ?) AS ranked
               WHERE started_at > ? OR recency <= {int(last_n_runs)}""",
            [as_of, as_of - timedelta(seconds=LOOKBACK_SECONDS)])


@dataclass(frozen=True)
class DistributionSnapshot:
    frame: pd.DataFrame
    as_of: datetime
    events: int
    first_event: datetime | None
    last_event: datetime | None
    seconds: float


def compute_distributions(conn, *, as_of: datetime, last_n_runs: int, computed_at: datetime | None = None
                          ) -> pd.DataFrame:
    """Run the query on an open connection and return the snapshot (not written anywhere)."""
    params = {"as_of": as_of, "computed_at": computed_at or datetime.now(UTC)}
    return query_df(conn, distributions_sql(last_n_runs), params)


def refresh_distributions(store: Store, *, as_of: datetime | None = None, last_n_runs: int = 100,
                          timeout_s: float | None = None) -> DistributionSnapshot:
    """Compute the distributions as of a time (default now) and replace the table with them."""
    import time

    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    t0 = time.perf_counter()
    with store.connect(timeout_s=timeout_s) as conn:
        REWARDS.ensure(store, conn)
        with store.analytical(conn, REWARDS, {"agent_rewards": rows_read(as_of, last_n_runs)}) as analysis:
            frame = compute_distributions(analysis, as_of=as_of, last_n_runs=last_n_runs)
        events, first, last = conn.execute(
            "SELECT count(*), min(started_at), max(started_at) FROM agent_rewards WHERE started_at <= ?",
            [as_of]).fetchone()
        with begin(conn):
            conn.execute("DELETE FROM reward_distributions")
            store.insert_frame(conn, "reward_distributions", frame[list(COLUMNS)])
    return DistributionSnapshot(frame=frame, as_of=as_of, events=int(events), first_event=first, last_event=last,
                                seconds=time.perf_counter() - t0)


def read_distributions(store: Store, *, read_only: bool = False, timeout_s: float | None = None) -> pd.DataFrame:
    """The current snapshot (empty frame when none was computed yet)."""
    return store.read_frame('SELECT * FROM reward_distributions ORDER BY agent, "window"',
                            table="reward_distributions", columns=COLUMNS, schema=REWARDS, read_only=read_only,
                            timeout_s=timeout_s)
