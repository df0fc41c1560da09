"""Circuit breaker: error-rate spikes and reward collapse, measured from the live runs in ``agent_events``.

Read by the sensor (which trips the persisted kill switch after ``breaker_consecutive_ticks`` breaching ticks in
a row, and never clears it) and by the gate (which denies with ``CIRCUIT_BREAKER`` as soon as a breach is in the
store, before the next tick). Windows end at ``now``.

What counts: live runs only, i.e. rows the pipeline wrote as runs ended (``source`` in ``LIVE_SOURCES``: the
Dagster op and ``agent-pipeline agents run``), never imported history (``source = 'import'`` /
``origin = 'imported'``: 500 old lines stamped "now" would otherwise dilute 10/10 failures to 10/510), and
never a row whose ``started_at`` is after ``now``. A run belongs to the windows by the time it ended
(``started_at + latency_seconds``), not by its start: failures that hung for longer than a window (up to the
agents' one-hour timeout) are counted when they fail, instead of landing before the window opens. A run is a failure when it carries an error; a success when it
carries no error and a finite reward; a row that is neither is not evidence of health and counts as neither.

The error-rate rule, sound on small samples: over the last ``error_window_sec`` a breach needs all of
- at least ``min_events_for_error_rate`` runs (5),
- at least ``min_errors_for_error_rate`` failures (3), and
- a failure share above ``max_error_rate_5m`` (0.10, the prototype's limit, unchanged in meaning).
At the default cadence a 5-minute window holds about 5 runs per agent (about 15 overall); judged by the rate
alone, one injected fault read 20 % and latched the switch. Faults are rare and independent (the simulated market fails a quote request
with probability 0.002), so three or more in one window happen by chance with probability about
C(15, 3) * 0.002**3 = 4e-6, while an outage fails most runs and reaches three failures within minutes (4 of 6
failing, 10 of 10 failing both breach). From 20 runs in a window on (at the default limit) the count no longer binds and the rule is the prototype's
rate limit. A confidence bound was rejected: a Wilson lower bound at 95 % still breaches on 2 failures of 5, and
at 99 %, which does not, a sustained 15 % failure rate over 100 runs does not breach.

The rule is applied to all live runs together and, with ``breaker_per_agent`` (default on), to each agent's runs
alone, so a flood of cheap successful runs from one agent cannot hide another agent that keeps failing; a
per-agent breach halts trading as a whole like any other (disable the failing agent before clearing the switch).

Reward collapse (with ``breaker_on_reward_collapse``; off by default, as the prototype's breaker never judged
reward): the one rule of ``agent_pipeline.reward.collapse`` with the ``[reward.collapse]`` parameters, applied to
each agent's successful live runs over the last hour against the last week. The breaker reads the run-time reward
(``agent_events.reward``), not the repriced ``agent_rewards`` the allocator and the Dagster check read: it must
act on the runs as they land, before (and whether or not) a repricing job has run. A collapsed agent halts trading
as a whole, like a per-agent error-rate breach.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from agent_pipeline.reward.collapse import BASELINE_SPAN, RECENT_SPAN, WindowStats, judge, stats
from agent_pipeline.store import has_table
from agent_pipeline.store.events import LIVE_SOURCES
from agent_pipeline.trading.config import GuardrailConfig


@dataclass(frozen=True)
class BreakerReading:
    at: datetime
    events: int = 0
    errors: int = 0
    reward_n: int = 0                    # all agents' scored live runs in the collapse rule's recent window
    reward_mean: float | None = None
    baseline_n: int = 0                  # ... and in its baseline window (only measured while the rule is on)
    baseline_mean: float | None = None
    breaches: tuple[str, ...] = ()
    by_agent: tuple[tuple[str, int, int], ...] = ()  # (agent, runs, failures) in the error window

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.events if self.events else None

    @property
    def breached(self) -> bool:
        return bool(self.breaches)

    @property
    def reason(self) -> str:
        return "; ".join(self.breaches)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        out["error_rate"] = self.error_rate
        out["breaches"] = list(self.breaches)
        out["by_agent"] = {agent: {"runs": runs, "errors": errors} for agent, runs, errors in self.by_agent}
        return out


def error_rate_breached(cfg: GuardrailConfig, runs: int, errors: int) -> bool:
    """The small-sample rule: enough runs, enough failures, and a failure share above the limit."""
    return (runs >= cfg.min_events_for_error_rate and runs > 0 and errors >= cfg.min_errors_for_error_rate
            and errors / runs > cfg.max_error_rate_5m)


def _rate_text(cfg: GuardrailConfig, runs: int, errors: int) -> str:
    return f"error rate {errors / runs:.2f} ({errors}/{runs} runs in the last {cfg.error_window_sec:g} s)"


def _pooled(windows: list[WindowStats]) -> tuple[int, float | None]:
    n = sum(w.n for w in windows)
    total = sum(w.n * w.mean for w in windows if w.mean is not None)
    return n, (total / n if n else None)


def evaluate(cfg: GuardrailConfig, at: datetime, *, events: int, errors: int,
             by_agent: Mapping[str, tuple[int, int]] | None = None,
             rewards: Mapping[str, tuple[WindowStats, WindowStats]] | None = None) -> BreakerReading:
    """Which limits the measured numbers breach; the messages carry the numbers.

    ``by_agent`` maps an agent to its (runs, failures) in the error window; an agent breaching on its own is
    reported when the overall rate does not already breach (with ``breaker_per_agent``). ``rewards`` maps an agent
    to its (recent, baseline) reward windows, judged by the collapse rule when ``breaker_on_reward_collapse``.
    """
    breaches = []
    agents = tuple(sorted((str(a), int(n), int(e)) for a, (n, e) in (by_agent or {}).items()))
    if error_rate_breached(cfg, events, errors):
        breaches.append(f"{_rate_text(cfg, events, errors)} above {cfg.max_error_rate_5m:g}")
    elif cfg.breaker_per_agent:
        for agent, runs, failed in agents:
            if error_rate_breached(cfg, runs, failed):
                overall = f"{errors}/{events}" if events else "0/0"
                breaches.append(f"agent {agent!r}: {_rate_text(cfg, runs, failed)} above "
                                f"{cfg.max_error_rate_5m:g} (all agents: {overall})")
    rewards = rewards if cfg.breaker_on_reward_collapse else {}
    for agent in sorted(rewards):
        verdict = judge(agent, *rewards[agent], cfg.reward_collapse)
        if verdict is not None:
            breaches.append(f"reward collapse: {verdict.text()}")
    reward_n, reward_mean = _pooled([recent for recent, _ in rewards.values()])
    baseline_n, baseline_mean = _pooled([base for _, base in rewards.values()])
    return BreakerReading(at, events, errors, reward_n, reward_mean, baseline_n, baseline_mean, tuple(breaches),
                          agents)


_LIVE = ", ".join(f"'{s}'" for s in LIVE_SOURCES)

# One row per agent: judged runs and failures in the error window; count, mean and sample std of the rewards of
# successful runs in the collapse rule's recent and baseline windows (both end now, as reward_distributions'
# do). A run is placed by the time it ended (start + latency; a latency that is missing, negative or not finite
# counts as 0): a 20-minute hang that fails now is evidence now, not 20 minutes ago.
# Parameters: now, error window start, recent window start, baseline window start, scan start.
_SQL = f"""
WITH runs AS (
    SELECT agent, reward, error, error_type, started_at,
           started_at + CASE WHEN isfinite(latency_seconds) AND latency_seconds > 0 THEN latency_seconds ELSE 0 END
               * INTERVAL '1 second' AS ended_at
    FROM agent_events
    WHERE started_at <= ? AND source IN ({_LIVE}) AND origin <> 'imported'
), live AS (
    SELECT agent, reward, ended_at >= ? AS in_error_window, ended_at > ? AS in_recent,
           ended_at > ? AS in_baseline,
           error IS NOT NULL OR error_type IS NOT NULL AS failed,
           error IS NULL AND error_type IS NULL AND reward IS NOT NULL AND isfinite(reward) AS succeeded
    FROM runs
    WHERE ended_at >= ?
)
SELECT agent,
    count(*) FILTER (WHERE in_error_window AND (failed OR succeeded)),
    count(*) FILTER (WHERE in_error_window AND failed),
    count(*) FILTER (WHERE in_recent AND succeeded),
    avg(reward) FILTER (WHERE in_recent AND succeeded),
    stddev_samp(reward) FILTER (WHERE in_recent AND succeeded),
    count(*) FILTER (WHERE in_baseline AND succeeded),
    avg(reward) FILTER (WHERE in_baseline AND succeeded),
    stddev_samp(reward) FILTER (WHERE in_baseline AND succeeded)
FROM live
GROUP BY agent
"""


def read_breaker(conn, cfg: GuardrailConfig, now: datetime) -> BreakerReading:
    """Measure the windows with one aggregate query; no ``agent_events`` table means nothing to measure. The
    week the collapse rule needs is scanned only while the breaker applies it."""
    if not has_table(conn, "agent_events"):
        return BreakerReading(now)
    err_start = now - timedelta(seconds=cfg.error_window_sec)
    recent_start, base_start = now - RECENT_SPAN, now - BASELINE_SPAN
    start = min(err_start, base_start) if cfg.breaker_on_reward_collapse else err_start
    rows = conn.execute(_SQL, [now, err_start, recent_start, base_start, start]).fetchall()
    by_agent: dict[str, tuple[int, int]] = {}
    rewards: dict[str, tuple[WindowStats, WindowStats]] = {}
    events = errors = 0
    for agent, runs, failed, r_n, r_mean, r_std, b_n, b_mean, b_std in rows:
        if runs:
            by_agent[agent] = (int(runs), int(failed))
        events, errors = events + int(runs), errors + int(failed)
        if b_n:
            rewards[str(agent)] = (stats(r_n, r_mean, r_std), stats(b_n, b_mean, b_std))
    return evaluate(cfg, now, events=events, errors=errors, by_agent=by_agent, rewards=rewards)
