"""What one allocation decided: unpacks as ``quotas, scores = ...`` (the prototype's shape) and carries the rest."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Allocation:
    """One period's decision.

    ``quotas``: runs per agent; ``scores``: the policy's point score per agent (UCB index, posterior mean...);
    ``shortfall``: runs of the budget the caps left unallocated; ``held_back``: runs left unallocated on purpose
    because no eligible agent's value for the slot exceeded ``value_floor`` (0 without a floor); ``samples``: per
    agent, the draws a randomised policy made per slot (empty for deterministic ones); ``capital``: USD per agent
    when capital was allocated; ``explanations``: per agent, the policy's estimate of its mean reward with a 90 %
    interval (``estimate``, ``low``, ``high``; None while unknown), its ``min_runs``/``max_runs``, the
    ``slots_won`` beyond its minimum and its ``status``: ``capped`` (a per-agent or strategy cap stopped it),
    ``at minimum`` (it won nothing beyond its minimum, or had nothing to win), ``held back`` (the value floor
    withheld runs it could have had) or ``allocated`` (it won slots on the policy's ranking).
    """

    quotas: dict[str, int]
    scores: dict[str, float]
    shortfall: int = 0
    samples: dict[str, list[float]] = field(default_factory=dict)
    capital: dict[str, float] = field(default_factory=dict)
    capital_method: dict[str, str] = field(default_factory=dict)
    undeployed_capital_usd: float = 0.0
    stats: dict[str, dict[str, float]] = field(default_factory=dict)
    policy: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    held_back: int = 0
    value_floor: float | None = None
    explanations: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __iter__(self) -> Iterator[dict]:
        yield self.quotas
        yield self.scores

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> dict:
        return (self.quotas, self.scores)[index]

    def record(self) -> dict[str, Any]:
        """A JSON-ready record of the decision: enough to explain it and, with the rewards, to replay it."""
        return {
            "policy": self.policy, "parameters": self.params, "seed": self.seed,
            "scores": {a: (v if math.isfinite(v) else None) for a, v in self.scores.items()},  # inf: unexplored
            "samples": self.samples, "quotas": self.quotas, "shortfall": self.shortfall,
            "held_back": self.held_back, "value_floor": self.value_floor, "explanations": self.explanations,
            "capital": self.capital, "capital_method": self.capital_method,
            "undeployed_capital_usd": self.undeployed_capital_usd, "stats": self.stats,
        }
