"""Bandit policies that turn reward history into run quotas (and capital) for one period.

All share one ``allocate``: validate the bounds, summarise each agent's rewards, give each never-seen agent one
slot first (explored, not starved), then fill the remaining slots one at a time with the policy's pick among the
agents still under their caps (``constraints.fill``), and finally size capital from the same summaries.

- ``ucb``: the prototype's UCB (``window=500``, ``exploration=1.5``), fixed: counts are the window's, the mean is
  winsorized, the bonus is in the rewards' own units (times a pooled spread), and a batch is filled as sequential
  UCB with the period's already-assigned slots counted as pulls, so the best agent gets most runs without
  starving close seconds (the prototype's round-robin made quotas near-uniform).
- ``thompson``: Gaussian Thompson sampling with discounting (every observation of any agent ages all memories by
  ``discount``, so an agent that stops running grows uncertain and is re-explored), winsorized moments, one
  posterior draw per agent per slot, each slot already given this period counting as a fantasized observation
  at the posterior mean (``fantasize``); ``posterior_scale`` < 1 narrows the posteriors (less exploration within a batch;
  tuned with ``benchmarks/allocator_regret.py``).
- ``glr_thompson`` (default): ``thompson`` plus a GLR change detector per agent that forgets everything before a
  detected change in the agent's mean; abrupt shifts are followed within a few runs instead of a memory length.
- ``glr_ucb``: ``ucb`` with discounting and the same change detector.
- ``uniform``: equal shares; the baseline.

With ``value_floor`` (a float; the pipeline's default is 0.0) a slot beyond the minimums goes only to an agent
whose value *for that slot* exceeds the floor: Thompson's draw, UCB's optimistic index, uniform's mean. A slot no
eligible agent is worth is held back (``Allocation.held_back``). An agent never seen gets its one exploratory run
either way (nothing is known of it yet). ``value_floor=None`` spends the budget, exactly as before the floor.

How Thompson sampling explores below the floor (a thresholding rule on the posterior): an agent is *credibly
above* the floor when its posterior gives ``P(mean > floor) >= 1 - floor_probability`` (0.75 by default) on the
evidence so far. A slot in which no open agent is credibly above the floor (the slots left over once such agents
are capped) is *speculative*, and goes only to an agent whose ``P(mean > floor)``, with the slots it has already
won this period counted as fantasized observations at its posterior mean, is still at least
``floor_probability`` (0.25), and whose draw is the best above the floor. So an agent whose posterior leaves a
fair chance of being above the floor keeps getting runs, while one whose evidence has settled below it gets none,
however many slots the caps leave over: per-slot draws alone gave it a run in each leftover slot in which its
draw happened to exceed the floor, so its exploration grew with the leftover budget instead of with what is
unknown about it. The test's probability is about the agent alone: its own rewards, undiscounted (a few old
rewards stay a few rewards), shrunk towards the floor rather than the pooled mean, with a spread never below the
pooled one. The probability it needs falls as the agent goes unrun: ``min(floor_probability, 1 / wait)``, the
wait in periods since its last run (Bayes-UCB's schedule), a period being the runs actually given: the minimums
plus what the agents credibly above the floor may run. So an agent starved on a few unlucky rewards is revisited
after a wait that grows as its evidence sinks, and a settled loser practically never; before, a starved agent's
evidence aged only with the runs of others, towards a pooled mean below the floor, and it could stay held back for
good beside a capped earner. The rule applies while some agent credibly above the floor has room to run, so when
no agent is credibly above the floor (a regime change, or every agent losing) the period is a search and the
draws alone decide, as they did before.

A tested slot also needs the agent short of doubling its evidence: an agent not credibly above the floor wins
at most as many slots in a period as it has rewards (or one). When the caps of the agents credibly above the
floor leave slots over (their room is less than the slots beyond the minimums), every slot of the period is
tested, not only the speculative ones. Otherwise its draws beat a capped earner's in the slots before the cap
was reached, and its fantasized rewards at a lucky mean kept it passing the test slot after slot: an agent on six
lucky rewards took some 40 of the runs left over in one period. Where the earners have room for the whole
budget nothing is left over and the draws decide, so an agent whose recent rewards rise is followed, not held to
its undiscounted record.
``floor_probability = 0`` turns the rule off.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent_pipeline.allocation.capital import CapitalPlan, allocate_capital
from agent_pipeline.allocation.constraints import AllocationError, Bounds, Picker, fill, make_bounds, statuses
from agent_pipeline.allocation.estimators import (
    RewardMemory,
    Summary,
    check_reward,
    glr_change_point,
    pooled_scale,
    robust_sigma,
    summarize,
)
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


def check_value_floor(value: object) -> float | None:
    """None (spend the budget) or a number; -inf means the same as None, NaN and +inf are refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise AllocationError(f"value_floor must be a number or None, got {value!r}")
    floor = float(value)
    if math.isnan(floor) or floor == math.inf:
        raise AllocationError(f"value_floor must be a number below +inf or None, got {value!r}")
    return None if floor == -math.inf else floor


def best_above(open_agents: list[str], value: Mapping[str, float], floor: float | None) -> str | None:
    """The open agent of highest value (the first listed on ties), among those above ``floor``; None if none is."""
    candidates = open_agents if floor is None else [a for a in open_agents if value[a] > floor]
    return max(candidates, key=value.__getitem__) if candidates else None


FLOOR_PROBABILITY = 0.25  # Thompson: speculative slots only to agents at least this likely above the floor
Z90 = 1.6448536269514722  # the two-sided 90 % normal quantile: estimates are shown with a 90 % interval


def probability_above(mean: np.ndarray, sd: np.ndarray, floor: float) -> np.ndarray:
    """P(mu > floor) for normal beliefs ``N(mean, sd^2)``, elementwise (sd 0: 1 above the floor, else 0)."""
    z = (np.asarray(mean, float) - floor) / np.maximum(np.asarray(sd, float), 1e-300)
    return 0.5 * np.array([math.erfc(-float(x) / math.sqrt(2.0)) for x in np.atleast_1d(z)])


@dataclass(frozen=True)
class Plan:
    """What a policy prepares for one period: point scores, the slot picker (None = hold the slot back), the
    per-slot draws it made, and per agent ``(estimate, low, high)`` of its mean reward (None when unknown)."""

    scores: dict[str, float]
    pick: Picker
    samples: Callable[[], dict[str, list[float]]]
    estimates: dict[str, tuple[float | None, float | None, float | None]]
    above_floor: dict[str, float] = field(default_factory=dict)  # P(mean > floor) at the period's start, if known


def _mean_interval(s: Summary) -> tuple[float | None, float | None, float | None]:
    """The windowed mean with a 90 % normal interval from its effective count (unknown for an unseen agent)."""
    if s.n == 0:
        return None, None, None
    half = Z90 * s.std / math.sqrt(max(s.n_eff, 1e-9))
    return s.mean, s.mean - half, s.mean + half


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
                 capital_agents: Iterable[str] | None = None,
                 value_floor: float | None = None) -> Allocation:
        """Quotas for ``agents`` summing to ``total_budget_runs`` less what the caps leave (``.shortfall``) and,
        with a ``value_floor``, less the runs no agent was worth (``.held_back``).

        ``min_runs``/``max_runs``: per-agent bounds; ``strategies`` maps agent -> strategy for
        ``max_runs_per_strategy`` and capital caps; ``capital`` sizes USD per agent (only ``capital_agents``,
        default all, bear capital); ``value_floor``: None spends the budget, a float gives runs beyond the
        minimums only to agents whose value for the slot exceeds it.
        """
        bounds = make_bounds(agents, total_budget_runs, min_runs, max_runs, strategies, max_runs_per_strategy)
        floor = check_value_floor(value_floor)
        self._before_allocate(bounds.agents)
        stats = {a: self.summary(a) for a in bounds.agents}
        scale = pooled_scale(stats)
        plan = self._plan(bounds, stats, scale, floor)
        unseen = [a for a in bounds.agents if stats[a].n == 0]
        filled = fill(bounds, plan.pick, first=unseen)
        quotas = filled.quotas
        status = statuses(bounds, filled)
        explanations = {a: {"estimate": plan.estimates[a][0], "low": plan.estimates[a][1],
                            "high": plan.estimates[a][2], "min_runs": bounds.lo[a], "max_runs": bounds.hi[a],
                            "slots_won": quotas[a] - bounds.lo[a], "status": status[a],
                            "p_above_floor": plan.above_floor.get(a)} for a in bounds.agents}
        result_capital: dict[str, float] = {}
        method: dict[str, str] = {}
        undeployed = 0.0
        if capital is not None:
            result_capital, method, undeployed = allocate_capital(
                capital, stats, quotas, bounds.strategy_of, capital_agents, fallback_sigma=scale)
        return Allocation(
            quotas=quotas, scores={a: float(v) for a, v in plan.scores.items()}, shortfall=filled.shortfall,
            samples={a: [float(x) for x in v] for a, v in plan.samples().items()}, capital=result_capital,
            capital_method=method, undeployed_capital_usd=undeployed,
            stats={a: {"n": s.n, "n_eff": round(s.n_eff, 6), "mean": s.mean, "std": s.std} for a, s in stats.items()},
            policy=self.name, params=self.params(), seed=self.seed, held_back=filled.held_back, value_floor=floor,
            explanations=explanations)

    def _before_allocate(self, agents: tuple[str, ...]) -> None:
        """Hook for policies that inspect history once per period (change detection)."""

    def _plan(self, bounds: Bounds, stats: dict[str, Summary], scale: float, floor: float | None) -> Plan:
        """The period's plan; the picker must hold a slot back (None) when no open agent's value exceeds
        ``floor`` (never when ``floor`` is None)."""
        raise NotImplementedError


class UniformAllocator(BaseAllocator):
    """Equal shares (fewest runs so far gets the next slot); the baseline every policy must beat."""

    name = "uniform"

    def _plan(self, bounds, stats, scale, floor):
        order = {a: i for i, a in enumerate(bounds.agents)}
        # with a floor, an agent's value is its mean reward so far (an unseen agent's is unknown: +inf)
        value = {a: stats[a].mean if stats[a].n else math.inf for a in bounds.agents}

        def pick(slot, open_agents, quotas):
            candidates = open_agents if floor is None else [a for a in open_agents if value[a] > floor]
            return min(candidates, key=lambda a: (quotas[a], order[a])) if candidates else None

        estimates = {a: _mean_interval(stats[a]) for a in bounds.agents}
        return Plan({a: 0.0 for a in bounds.agents}, pick, dict, estimates)


class UCBAllocator(BaseAllocator):
    """The prototype's UCB with its defects fixed (see the module docstring)."""

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
        """The prototype's index, ``mean + exploration * sqrt(log(total) / n)``, on windowed counts (inf if unseen)."""
        s = self.summary(agent)
        return self._index(s, total_pulls, 0, self.scale or 1.0)

    def _index(self, s: Summary, total: float, extra: int, scale: float, prior_mean: float = 0.0) -> float:
        if s.n == 0 and extra == 0:
            return math.inf
        n = s.n_eff + extra  # the window's (discounted) count, consistent with the mean it goes with
        mean = s.mean if s.n else prior_mean  # an unseen agent, once given a slot, counts at the pooled mean
        return mean + self.exploration * scale * math.sqrt(math.log(max(total, 2)) / max(n, 1e-9))

    def _plan(self, bounds, stats, scale, floor):
        scale = self.scale or scale
        total = sum(s.n_eff for s in stats.values()) + 1
        seen = [s.mean for s in stats.values() if s.n]
        prior = float(np.mean(seen)) if seen else 0.0
        scores = {a: self._index(stats[a], total, 0, scale, prior) for a in bounds.agents}

        def pick(slot, open_agents, quotas):
            value = {a: self._index(stats[a], total + slot, quotas[a], scale, prior) for a in open_agents}
            return best_above(open_agents, value, floor)

        estimates = {}
        for a in bounds.agents:  # the windowed mean, between its lower and upper confidence bounds (the index)
            s = stats[a]
            if s.n == 0:
                estimates[a] = (None, None, None)
            else:
                bonus = scores[a] - s.mean
                estimates[a] = (s.mean, s.mean - bonus, scores[a])
        return Plan(scores, pick, dict, estimates)


class ThompsonAllocator(BaseAllocator):
    """Discounted Gaussian Thompson sampling on winsorized rewards, one draw per agent per slot."""

    name = "thompson"
    randomised = True

    def __init__(self, discount: float = 0.9985, window: int = 2000, prior_strength: float = 1.0,
                 tail: float = 0.05, posterior_scale: float = 0.75, fantasize: bool = True,
                 floor_probability: float = FLOOR_PROBABILITY, seed: int | None = None):
        super().__init__(window=window, tail=tail, seed=seed)
        if not isinstance(fantasize, bool):
            raise ValueError(f"fantasize must be true or false, got {fantasize!r}")
        self.fantasize = fantasize
        self.gamma = _number("discount", discount, 0.0, 1.0, lo_open=True)
        self.prior_strength = _number("prior_strength", prior_strength, 0.0, 1e6, lo_open=True)
        self.posterior_scale = _number("posterior_scale", posterior_scale, 0.0, 100.0, lo_open=True)
        self.floor_probability = _number("floor_probability", floor_probability, 0.0, 0.5)

    def params(self):
        return {**super().params(), "discount": self.gamma, "prior_strength": self.prior_strength,
                "posterior_scale": self.posterior_scale, "fantasize": self.fantasize,
                "floor_probability": self.floor_probability}

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

    def _plan(self, bounds, stats, scale, floor):
        """One draw per agent per slot. A slot already given to an agent this period counts as one more
        observation at its posterior mean, so its later draws narrow (batched Thompson sampling with fantasized
        outcomes): the period's runs concentrate on agents that are likely best, not merely uncertain. With a
        floor, a slot goes to the best draw above it, or is held back when no open agent's draw exceeds it; a
        speculative slot only to agents still ``floor_probability`` likely above the floor, and every slot so tested
        when the earners' caps leave slots over (module docstring)."""
        post = self.posterior(stats, scale)
        agents = list(bounds.agents)
        slots = max(bounds.budget - sum(bounds.lo.values()), 0)
        mu = np.array([post[a][0] for a in agents])
        var = np.array([post[a][1] for a in agents])
        n = np.array([post[a][2] for a in agents])
        z = self._rng.standard_normal((slots, len(agents))) if slots else np.empty((0, len(agents)))
        index = {a: i for i, a in enumerate(agents)}
        rows: list[np.ndarray] = []

        tau = self.floor_probability
        if floor is not None:
            # credibly above the floor on the evidence so far (this period's fantasized slots add none)
            sure = probability_above(mu, self.posterior_scale * np.sqrt(var / n), floor) >= 1.0 - tau
            earners = any(sure[index[a]] and bounds.hi[a] > bounds.lo[a] for a in agents)
            room = sum(bounds.hi[a] - bounds.lo[a] for a in agents if sure[index[a]])
            test = self._speculative_test(agents, floor, scale, min(bounds.budget, sum(bounds.lo.values()) + room))
            # the earners' caps leave slots over: every slot is a question of whether the others are worth a run
            capped = earners and room < slots

        def pick(slot, open_agents, quotas):
            q = np.fromiter((quotas[a] for a in agents), float, len(agents)) if self.fantasize else 0.0
            sd = self.posterior_scale * np.sqrt(var / (n + q))
            row = mu + sd * z[slot]
            rows.append(row)
            if floor is not None and earners and (capped or not any(sure[index[a]] for a in open_agents)) \
                    and not all(sure[index[a]] for a in open_agents):  # the slot is tested
                won = np.fromiter((quotas[a] - bounds.lo[a] for a in agents), float, len(agents))
                admitted = test.admits(floor, q, won)  # this period's slots so far count as observations
                open_agents = [a for a in open_agents if sure[index[a]] or admitted[index[a]]]
            return best_above(open_agents, {a: float(row[index[a]]) for a in open_agents}, floor)

        def samples() -> dict[str, list[float]]:
            """Per agent, its draw in each slot the fill asked about (the decision record's ``samples``)."""
            table = np.array(rows) if rows else np.empty((0, len(agents)))
            return {a: table[:, i].tolist() for i, a in enumerate(agents)}

        # the 90 % interval of the distribution the first slot's draws come from
        half = Z90 * self.posterior_scale * np.sqrt(var / n)
        estimates = {a: (float(mu[i]), float(mu[i] - half[i]), float(mu[i] + half[i])) for i, a in enumerate(agents)}
        above = {} if floor is None else dict(zip(agents, test.probability(floor, 0.0).tolist(), strict=True))
        return Plan({a: post[a][0] for a in agents}, pick, samples, estimates, above)

    def _speculative_test(self, agents: list[str], floor: float, scale: float, per_period: int) -> SpeculativeTest:
        """Per agent, the belief its speculative-slot test uses and the probability above the floor it needs.

        The belief is the agent's own evidence, undiscounted (a few old rewards stay a few rewards; discounting
        them would make the agent look uncertain again merely because others ran), shrunk towards the floor by
        ``prior_strength`` pseudo-observations, not towards the pooled mean: whether an agent is worth any run is
        a question about it alone. Its spread is never below the pooled one and is not narrowed by
        ``posterior_scale``: a short record of close rewards is luck as often as evidence. The probability
        needed is ``floor_probability`` until the agent has gone unrun for more than ``1 / floor_probability``
        periods, then one over that wait (the Bayes-UCB schedule); a period is ``per_period`` runs, what the
        minimums and the agents credibly above the floor use of the budget. So an agent starved on a few unlucky
        rewards is revisited after a wait that grows as its evidence sinks, a settled loser practically never.
        """
        k = self.prior_strength
        own = [self.memory.arrays(a) for a in agents]
        mine = [summarize(steps, values, self.memory.clock, discount=1.0, tail=self.tail) for steps, values in own]
        n = np.array([s.n_eff for s in mine])
        mean = np.array([s.mean for s in mine])
        std = np.array([s.std for s in mine])
        var = np.maximum((n * std ** 2 + k * scale ** 2) / (n + k), scale ** 2)
        wait = np.array([self.memory.since_last(a) for a in agents], float) / max(per_period, 1)
        needed = np.minimum(self.floor_probability, 1.0 / np.maximum(wait, 1e-300))
        return SpeculativeTest((n * mean + k * floor) / (n + k), var, n + k, needed, n)


@dataclass(frozen=True)
class SpeculativeTest:
    """Thompson's test for a speculative slot, per agent (arrays in the period's agent order): the belief about
    its mean reward on its own evidence (``worth``, noise ``var`` over ``count`` observations) and the
    probability above the floor it needs (``needed``)."""

    worth: np.ndarray
    var: np.ndarray
    count: np.ndarray
    needed: np.ndarray
    rewards: np.ndarray  # how many rewards of its own the agent has (remembered, undiscounted)

    def probability(self, floor: float, fantasized: np.ndarray | float) -> np.ndarray:
        """P(mean > floor) per agent, with ``fantasized`` slots this period counted as observations at ``worth``."""
        return probability_above(self.worth, np.sqrt(self.var / (self.count + fantasized)), floor)

    def admits(self, floor: float, fantasized: np.ndarray | float, won: np.ndarray) -> np.ndarray:
        """Per agent, whether it may have one more slot: still likely enough above the floor with this period's
        slots counted, and short of doubling its own evidence this period (``won`` slots beyond its minimum
        fewer than its rewards, or none yet): what a period teaches about an agent is bounded by what it knew."""
        return (self.probability(floor, fantasized) >= self.needed) & (won < np.maximum(1.0, self.rewards))


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
                 tail: float = 0.05, posterior_scale: float = 0.75, fantasize: bool = True,
                 floor_probability: float = FLOOR_PROBABILITY, delta: float = 0.01, min_segment: int = 8,
                 seed: int | None = None):
        super().__init__(discount=discount, window=window, prior_strength=prior_strength, tail=tail,
                         posterior_scale=posterior_scale, fantasize=fantasize, floor_probability=floor_probability,
                         seed=seed)
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
