"""Capital per agent and per strategy: fractional Kelly where the history supports it, risk parity otherwise.

A reward is EV per unit of capital at risk, so Kelly's growth-optimal fraction of capital for an agent is
``mean / variance`` of its rewards; we stake ``kelly_fraction`` of that (quarter Kelly by default: full Kelly
on estimated moments is far too aggressive). An agent with too little history (fewer than ``min_samples``
rewards, or no spread yet) gets a risk-parity stake instead: ``kelly_fraction`` of the budget split in
proportion to ``1 / sigma`` among the runnable agents. Agents with quota 0, or whose estimated edge is not
positive, get nothing (fail closed). Per-agent and per-strategy caps then scale stakes down; capital the caps
or the lack of edge leave over stays undeployed and is reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent_pipeline.allocation.estimators import Summary
from agent_pipeline.numbers import finite_number


@dataclass(frozen=True)
class CapitalPlan:
    total_capital_usd: float
    kelly_fraction: float = 0.25
    min_samples: int = 20
    max_capital_per_agent: float | None = None
    max_capital_per_strategy: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        def bad(name: str, value: object, allow_none: bool = False) -> bool:
            if value is None:
                return not allow_none
            return finite_number(value) is None or value < 0

        if bad("total_capital_usd", self.total_capital_usd):
            raise ValueError(f"total_capital_usd must be a finite number >= 0, got {self.total_capital_usd!r}")
        if bad("kelly_fraction", self.kelly_fraction) or not 0 < self.kelly_fraction <= 1:
            raise ValueError(f"kelly_fraction must be in (0, 1], got {self.kelly_fraction!r}")
        if isinstance(self.min_samples, bool) or not isinstance(self.min_samples, int) or self.min_samples < 2:
            raise ValueError(f"min_samples must be an integer >= 2, got {self.min_samples!r}")
        if bad("max_capital_per_agent", self.max_capital_per_agent, allow_none=True):
            raise ValueError(f"max_capital_per_agent must be a finite number >= 0, got {self.max_capital_per_agent!r}")
        for s, cap in (self.max_capital_per_strategy or {}).items():
            if bad(s, cap):
                raise ValueError(f"max_capital_per_strategy[{s!r}] must be a finite number >= 0, got {cap!r}")


def allocate_capital(plan: CapitalPlan, stats: Mapping[str, Summary], quotas: Mapping[str, int],
                     strategy_of: Mapping[str, str], eligible: Iterable[str] | None = None,
                     fallback_sigma: float = 1.0) -> tuple[dict[str, float], dict[str, str], float]:
    """Return ``(capital_usd per agent, method per agent, undeployed_usd)``; every agent gets an entry."""
    allowed = set(quotas) if eligible is None else set(eligible)
    runnable = [a for a in quotas if quotas[a] > 0 and a in allowed]
    fraction: dict[str, float] = {a: 0.0 for a in quotas}
    method: dict[str, str] = {a: ("no runs" if quotas[a] <= 0 else "not capital-bearing") for a in quotas}
    sigma = {a: stats[a].std if a in stats and stats[a].std > 0 else fallback_sigma for a in runnable}
    inv_sigma_total = sum(1.0 / max(sigma[a], 1e-12) for a in runnable)
    for a in runnable:
        s = stats.get(a)
        if s is not None and s.n >= plan.min_samples and s.std > 0:
            kelly = s.mean / (s.std * s.std)
            fraction[a] = min(max(plan.kelly_fraction * kelly, 0.0), 1.0)
            method[a] = "fractional kelly" if fraction[a] > 0 else "no edge"
        else:
            fraction[a] = plan.kelly_fraction * (1.0 / max(sigma[a], 1e-12)) / inv_sigma_total
            method[a] = "risk parity"
    total_fraction = sum(fraction.values())
    if total_fraction > 1.0:
        fraction = {a: f / total_fraction for a, f in fraction.items()}
    capital = {a: fraction[a] * plan.total_capital_usd for a in quotas}
    if plan.max_capital_per_agent is not None:
        for a, usd in capital.items():
            if usd > plan.max_capital_per_agent:
                capital[a] = float(plan.max_capital_per_agent)
                method[a] += ", agent cap"
    for s, cap in (plan.max_capital_per_strategy or {}).items():
        members = [a for a in capital if strategy_of.get(a, a) == s]
        used = sum(capital[a] for a in members)
        if used > cap and used > 0:
            scale = cap / used
            for a in members:
                capital[a] *= scale
                if capital[a] > 0:
                    method[a] += ", strategy cap"
    capital = {a: math.floor(usd * 100.0 + 1e-9) / 100.0 for a, usd in capital.items()}  # cents, never above a cap
    undeployed = max(plan.total_capital_usd - sum(capital.values()), 0.0)
    return capital, method, float(round(undeployed, 2))
