"""Reward collapse, defined once: one agent's last hour of rewards judged against its last week.

The rule (parameters in ``[reward.collapse]``, ``CollapseConfig``):

- drop: with at least ``min_runs`` scored runs in both windows, the last hour's mean is below the collapse line,
  the week's mean minus ``max(drop_std x the week's std, min_drop)`` (an undefined std counts as 0, so a steady
  baseline still needs ``min_drop`` to collapse);
- floor (when ``floor`` is set): with at least ``min_runs`` scored runs in the last hour, its mean is below the floor.

The windows are those of ``reward_distributions`` (``1h`` and ``7d``, each ending now, so the week includes the
hour). A mean that is missing or not finite is not judged: no evidence, no verdict.

Who applies it, to which reward:

- the Dagster check ``reward_collapse`` judges ``reward_distributions``, built from the repriced ``agent_rewards``,
  because it guards the allocator, which reads those same rewards: it must judge what the allocator would build on;
- the circuit breaker (``trading.breaker``, with ``[guardrails] breaker_on_reward_collapse``) judges the run-time
  reward of live runs in ``agent_events``, because it must act within seconds of the runs and must not wait for a
  repricing job that may not have run (nor trust imported history);
- the alert rule ``AgentRewardCollapse`` evaluates the same rule in PromQL on the exported distribution statistics
  and these parameters (``metrics.domain_tables.configured_expectations``); ``gap`` is its value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from agent_pipeline.numbers import finite_number
from agent_pipeline.reward.config import CollapseConfig
from agent_pipeline.reward.distributions import TIME_WINDOWS

RECENT_WINDOW = "1h"
BASELINE_WINDOW = "7d"
RECENT_SPAN = dict(TIME_WINDOWS)[RECENT_WINDOW]
BASELINE_SPAN = dict(TIME_WINDOWS)[BASELINE_WINDOW]


@dataclass(frozen=True)
class WindowStats:
    """One agent's scored runs in one window: how many, their mean and sample std (None when undefined)."""

    n: int
    mean: float | None
    std: float | None = None


@dataclass(frozen=True)
class Collapse:
    """A verdict: which rules the agent broke, and ``gap``, how far the last hour's mean sits below the nearest line
    it crossed (negative; the alert rule's value)."""

    agent: str
    rules: tuple[str, ...]
    gap: float
    recent_mean: float
    recent_runs: int
    baseline_mean: float | None = None
    baseline_std: float | None = None
    baseline_runs: int = 0
    margin: float | None = None
    floor: float | None = None

    def text(self) -> str:
        parts = []
        if "drop" in self.rules:
            parts.append(f"mean reward fell from {self.baseline_mean:.4g} ({BASELINE_WINDOW}, {self.baseline_runs} "
                         f"runs) to {self.recent_mean:.4g} ({RECENT_WINDOW}, {self.recent_runs} runs), more than "
                         f"the allowed {self.margin:.4g}")
        if "floor" in self.rules:
            parts.append(f"mean reward {self.recent_mean:.4g} over {self.recent_runs} runs in the last "
                         f"{RECENT_WINDOW} below the floor {self.floor:g}")
        return f"agent {self.agent!r}: " + " and ".join(parts)

    def as_dict(self) -> dict:
        return {**asdict(self), "rules": list(self.rules)}


def judge(agent: str, recent: WindowStats, baseline: WindowStats, config: CollapseConfig) -> Collapse | None:
    """The verdict on one agent, or None when it did not collapse (or there is too little to judge)."""
    recent_mean = finite_number(recent.mean)
    if recent.n < config.min_runs or recent_mean is None:
        return None
    gaps: dict[str, float] = {}
    base_mean, std, margin = finite_number(baseline.mean), None, None
    if baseline.n >= config.min_runs and base_mean is not None:
        std = finite_number(baseline.std) or 0.0
        margin = max(config.drop_std * std, config.min_drop)
        gaps["drop"] = recent_mean - (base_mean - margin)
    if config.floor is not None:
        gaps["floor"] = recent_mean - config.floor
    broken = tuple(rule for rule, gap in gaps.items() if gap < 0)
    if not broken:
        return None
    return Collapse(agent, broken, min(gaps[r] for r in broken), recent_mean, int(recent.n),
                    base_mean if margin is not None else None, std, int(baseline.n), margin, config.floor)


def stats(n, mean, std=None) -> WindowStats:
    """A window's statistics as a table or a query gives them (NULL, NaN, numpy types) in the rule's terms."""
    return WindowStats(int(finite_number(n) or 0), finite_number(mean), finite_number(std))
