"""Bandit policies that turn reward history into run quotas (and capital) for one period.

All share one ``allocate``: validate the bounds, summarise each agent's rewards, give each never-seen agent one
slot first (explored, not starved), then fill the remaining slots one at a time with the policy's pick among the
agents still under their caps (``constraints.fill``), and finally size capital from the same summaries.

- ``ucb``: the seed's UCB (``window=500``, ``exploration=1.5``), fixed: counts are the window's, the mean is
  winsorized, the bonus is in the rewards' own units (times a pooled spread), and a batch is filled as sequential
  UCB with the period's already-assigned slots counted as pulls, so the best agent gets most runs without
  starving close seconds (the seed's round-robin made quotas near-uniform).
- ``thompson``: Gaussian Thompson sampling with discounting (every observation of any agent ages all memories by
  ``discount``, so an agent that stops running grows uncertain and is re-explored), winsorized moments, one
  posterior draw per agent per slot, each slot already given this period counting as a fantasized observation
  at the posterior mean (``fantasize``); ``posterior_scale`` < 1 narrows the posteriors (less exploration within a batch;
  tuned with ``benchmarks/allocator_regret.py``).
- ``glr_thompson`` (default): ``thompson`` plus a GLR change detector per agent that forgets everything before a
  detected change in the agent's mean; abrupt shifts are followed within a few runs instead of a memory length.
- ``glr_ucb``: ``ucb`` with discounting and the same change detector.
- ``uniform``: equal shares; the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from agent_pipeline.allocation.capital import CapitalPlan, allocate_capital
from agent_pipeline.allocation.constraints import AllocationError, Bounds, fill, make_bounds
from agent_pipeline.allocation.estimators import (RewardMemory, Summary, check_reward, glr_change_point,
                                                  pooled_scale, robust_sigma, summarize)
from agent_pipeline.allocation.result import Allocation
from agent_pipeline.numbers import finite_number


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _number(name: str, value: object, lo: float, hi: float, *, lo_open: bool = False) -> float:
    if finite_number(value) is None or value > hi or value < lo or (lo_open and value == lo):
        bracket = "(" if lo_open else "["
        raise ValueError(f"{name} must be a number in {bracket}{lo}, {hi}], got {value!r}")
    return float(value)


def _seed(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {value!r}")
    return value


class BaseAllocator:
    """Shared memory, validation, constrained fill and capital sizing; subclasses choose the slot picker."""

    name = "base"
    randomised = False

    def __init__(self, window: int = 500, tail: float = 0.05, seed: int | None = None):
        self.window = _positive_int("window", window)
        self.tail = _number("tail", tail, 0.0, 0.25)
        self.seed = _seed(seed)
        self.memory = RewardMemory(self.window)
        self._rng = np.random.default_rng(self.seed)

    # -- parameters and history -------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {"window": self.window, "tail": self.tail}

    def observe(self, agent: str, reward: float) -> None:
        """Add one run's reward (finite; a failed run has no reward and is not observed)."""
        self.memory.add(agent, check_reward(agent, reward))

    def observe_many(self, pairs: Iterable[tuple[str, float]]) -> None:
        for agent, reward in pairs:
            self.observe(agent, reward)

    def discount(self) -> float:
        return 1.0

    def summary(self, agent: str) -> Summary:
        steps, values = self.memory.arrays(agent)
        return summarize(steps, values, self.memory.clock, discount=self.discount(), tail=self.tail)

    # -- the period's decision ----------------------------------------------------------------------------------
    def allocate(self, agents, min_runs=None, max_runs=None, total_budget_runs=100, *,
                 strategies: Mapping[str, str] | None = None,
                 max_runs_per_strategy: Mapping[str, int] | None = None,
                 capital: CapitalPlan | None = None,
                 capital_agents: Iterable[str] | None = None) -> Allocation:
        """Quotas for ``agents`` summing to ``total_budget_runs`` minus what the caps leave (``.shortfall``).

        ``min_runs``/``max_runs``: per-agent bounds; ``strategies`` maps agent -> strategy for
        ``max_runs_per_strategy`` and capital caps; ``capital`` sizes USD per agent (only ``capital_agents``,
        default all, bear capital).
        """
        bounds = make_bounds(agents, total_budget_runs, min_runs, max_runs, strategies, max_runs_per_strategy)
        self._before_allocate(bounds.agents)
        stats = {a: self.summary(a) for a in bounds.agents}
        scale = pooled_scale(stats)
        scores, picker, samples = self._plan(bounds, stats, scale)
        unseen = [a for a in bounds.agents if stats[a].n == 0]
        quotas, shortfall = fill(bounds, picker, first=unseen)
        result_capital: dict[str, float] = {}
        method: dict[str, str] = {}
        undeployed = 0.0
        if capital is not None:
            result_capital, method, undeployed = allocate_capital(
                capital, stats, quotas, bounds.strategy_of, capital_agents, fallback_sigma=scale)
        return Allocation(
            quotas=quotas, scores={a: float(v) for a, v in scores.items()}, shortfall=shortfall,
            samples={a: [float(x) for x in v] for a, v in samples().items()}, capital=result_capital,
            capital_method=method, undeployed_capital_usd=undeployed,
            stats={a: {"n": s.n, "n_eff": round(s.n_eff, 6), "mean": s.mean, "std": s.std} for a, s in stats.items()},
            policy=self.name, params=self.params(), seed=self.seed)

    def _before_allocate(self, agents: tuple[str, ...]) -> None:
        """Hook for policies that inspect history once per period (change detection)."""

    def _plan(self, bounds: Bounds, stats: dict[str, Summary], scale: float):
        """Return ``(scores, pick, samples)``: point scores, the slot picker, and a callable giving the draws."""
        raise NotImplementedError


class UniformAllocator(BaseAllocator):
    """Equal shares (fewest runs so far gets the next slot); the baseline every policy must beat."""

    name = "uniform"

    def _plan(self, bounds, stats, scale):
        order = {a: i for i, a in enumerate(bounds.agents)}

        def pick(slot, open_agents, quotas):
            return min(open_agents, key=lambda a: (quotas[a], order[a]))

        return {a: 0.0 for a in bounds.agents}, pick, dict


class UCBAllocator(BaseAllocator):
    """The seed's UCB with its defects fixed (see the module docstring)."""

    name = "ucb"

    def __init__(self, window: int = 500, exploration: float = 1.5, tail: float = 0.05,
                 scale: float | None = None, discount: float = 1.0, seed: int | None = None):
        super().__init__(window=window, tail=tail, seed=seed)
        self.exploration = _number("exploration", exploration, 0.0, 1e6)
        self.scale = None if scale is None else _number("scale", scale, 0.0, 1e12, lo_open=True)
        self.gamma = _number("discount", discount, 0.0, 1.0, lo_open=True)

    def params(self):
        return {**super().params(), "exploration": self.exploration, "scale": self.scale, "discount": self.gamma}

    def discount(self) -> float:
        return self.gamma

    def score(self, agent: str, total_pulls: int) -> float:
        """The seed's index, ``mean + exploration * sqrt(log(total) / n)``, on windowed counts (inf if unseen)."""
        s = self.summary(agent)
        return self._index(s, total_pulls, 0, self.scale or 1.0)

    def _index(self, s: Summary, total: float, extra: int, scale: float, prior_mean: float = 0.0) -> float:
        if s.n == 0 and extra == 0:
            return math.inf
        n = s.n_eff + extra  # the window's (discounted) count, consistent with the mean it goes with
        mean = s.mean if s.n else prior_mean  # an unseen agent, once given a slot, counts at the pooled mean
        return mean + self.exploration * scale * math.sqrt(math.log(max(total, 2)) / max(n, 1e-9))

    def _plan(self, bounds, stats, scale):
        scale = self.scale or scale
        total = sum(s.n_eff for s in stats.values()) + 1
        seen = [s.mean for s in stats.values() if s.n]
        prior = float(np.mean(seen)) if seen else 0.0
        scores = {a: self._index(stats[a], total, 0, scale, prior) for a in bounds.agents}
        order = {a: i for i, a in enumerate(bounds.agents)}

        def pick(slot, open_agents, quotas):
            return max(open_agents,
                       key=lambda a: (self._index(stats[a], total + slot, quotas[a], scale, prior), -order[a]))

        return scores, pick, dict


class ThompsonAllocator(BaseAllocator):
    """Discounted Gaussian Thompson sampling on winsorized rewards, one draw per agent per slot."""

    name = "thompson"
    randomised = True

    def __init__(self, discount: float = 0.9985, window: int = 2000, prior_strength: float = 1.0,
                 tail: float = 0.05, posterior_scale: float = 0.75, fantasize: bool = True, seed: int | None = None):
        super().__init__(window=window, tail=tail, seed=seed)
        if not isinstance(fantasize, bool):
            raise ValueError(f"fantasize must be true or false, got {fantasize!r}")
        self.fantasize = fantasize
        self.gamma = _number("discount", discount, 0.0, 1.0, lo_open=True)
        self.prior_strength = _number("prior_strength", prior_strength, 0.0, 1e6, lo_open=True)
        self.posterior_scale = _number("posterior_scale", posterior_scale, 0.0, 100.0, lo_open=True)

    def params(self):
        return {**super().params(), "discount": self.gamma, "prior_strength": self.prior_strength,
                "posterior_scale": self.posterior_scale, "fantasize": self.fantasize}

    def discount(self) -> float:
        return self.gamma

    def posterior(self, stats: dict[str, Summary], scale: float) -> dict[str, tuple[float, float, float]]:
        """Per agent ``(mean, noise variance, effective count)`` of the normal posterior over its mean reward,
        shrunk towards the pooled mean and spread by ``prior_strength`` pseudo-observations."""
        seen = [s for s in stats.values() if s.n > 0]
        prior_mean = float(np.mean([s.mean for s in seen])) if seen else 0.0
        k = self.prior_strength
        out = {}
        for a, s in stats.items():
            n = s.n_eff
            mean = (n * s.mean + k * prior_mean) / (n + k)
            var = (n * s.std ** 2 + k * scale ** 2) / (n + k) if n > 0 else scale ** 2
            out[a] = (mean, max(var, 1e-18), n + k)
        return out

    def _plan(self, bounds, stats, scale):
        """One draw per agent per slot. A slot already given to an agent this period counts as one more
        observation at its posterior mean, so its later draws narrow (batched Thompson sampling with fantasized
        outcomes): the period's runs concentrate on agents that are likely best, not merely uncertain."""
        post = self.posterior(stats, scale)
        agents = list(bounds.agents)
        slots = max(bounds.budget - sum(bounds.lo.values()), 0)
        mu = np.array([post[a][0] for a in agents])
        var = np.array([post[a][1] for a in agents])
        n = np.array([post[a][2] for a in agents])
        z = self._rng.standard_normal((slots, len(agents))) if slots else np.empty((0, len(agents)))
        index = {a: i for i, a in enumerate(agents)}
        rows: list[np.ndarray] = []

        def pick(slot, open_agents, quotas):
            q = np.fromiter((quotas[a] for a in agents), float, len(agents)) if self.fantasize else 0.0
            row = mu + self.posterior_scale * np.sqrt(var / (n + q)) * z[slot]
            rows.append(row)
            return max(open_agents, key=lambda a: row[index[a]])

        def samples() -> dict[str, list[float]]:
            """Per agent, its draw in each slot the fill asked about (the decision record's ``samples``)."""
            table = np.array(rows) if rows else np.empty((0, len(agents)))
            return {a: table[:, i].tolist() for i, a in enumerate(agents)}

        return {a: post[a][0] for a in agents}, pick, samples


class _ChangeDetection:
    """Per-agent GLR test for an abrupt change in mean; on detection, the history before the change is dropped."""

    memory: RewardMemory

    def _init_detector(self, delta: float, min_segment: int) -> None:
        self.delta = _number("delta", delta, 0.0, 1.0, lo_open=True)
        self.min_segment = _positive_int("min_segment", min_segment)
        self.changes: dict[str, int] = {}

    def _detector_params(self) -> dict[str, Any]:
        return {"delta": self.delta, "min_segment": self.min_segment}

    def _before_allocate(self, agents):
        threshold = math.log(1.0 / self.delta)
        for a in agents:
            for _ in range(4):  # a few nested changes at most per period; each pass shortens the history
                _, values = self.memory.arrays(a)
                if values.size < 2 * self.min_segment:
                    break
                sigma = robust_sigma(values)
                clipped = np.clip(values, np.median(values) - 5 * sigma, np.median(values) + 5 * sigma) \
                    if sigma > 0 else values
                cut = glr_change_point(clipped, sigma, threshold, self.min_segment)
                if cut is None:
                    break
                self.memory.drop_before(a, values.size - cut)
                self.changes[a] = self.changes.get(a, 0) + 1


class GLRThompsonAllocator(_ChangeDetection, ThompsonAllocator):
    """``thompson`` plus per-agent GLR change detection that forgets the history before a detected change."""

    name = "glr_thompson"

    def __init__(self, discount: float = 0.9985, window: int = 2000, prior_strength: float = 1.0,
                 tail: float = 0.05, posterior_scale: float = 0.75, fantasize: bool = True, delta: float = 0.01,
                 min_segment: int = 8, seed: int | None = None):
        super().__init__(discount=discount, window=window, prior_strength=prior_strength, tail=tail,
                         posterior_scale=posterior_scale, fantasize=fantasize, seed=seed)
        self._init_detector(delta, min_segment)

    def params(self):
        return {**super().params(), **self._detector_params()}


class GLRUCBAllocator(_ChangeDetection, UCBAllocator):
    """``ucb`` with discounting plus per-agent GLR change detection (forgets the history before a change)."""

    name = "glr_ucb"

    def __init__(self, window: int = 500, exploration: float = 1.5, tail: float = 0.05,
                 scale: float | None = None, discount: float = 0.999, delta: float = 0.01, min_segment: int = 8,
                 seed: int | None = None):
        super().__init__(window=window, exploration=exploration, tail=tail, scale=scale, discount=discount, seed=seed)
        self._init_detector(delta, min_segment)

    def params(self):
        return {**super().params(), **self._detector_params()}


POLICIES: dict[str, type[BaseAllocator]] = {
    "ucb": UCBAllocator,
    "thompson": ThompsonAllocator,
    "glr_thompson": GLRThompsonAllocator,
    "glr_ucb": GLRUCBAllocator,
    "uniform": UniformAllocator,
}
DEFAULT_POLICY = "glr_thompson"


def make_allocator(policy: str = DEFAULT_POLICY, **params: Any) -> BaseAllocator:
    """Build a policy by name; unknown names and unknown or invalid parameters raise ValueError naming them."""
    if policy not in POLICIES:
        raise AllocationError(f"unknown allocation policy {policy!r}; known policies are {sorted(POLICIES)}")
    cls = POLICIES[policy]
    import inspect

    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise AllocationError(f"policy {policy!r} has no parameter(s) {unknown}; it takes {sorted(accepted)}")
    return cls(**params)
