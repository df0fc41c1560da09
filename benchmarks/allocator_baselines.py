"""Baselines for the allocator regret benchmark: the prototype's allocator as written, and MABWiser policies.

Both are driven through the same harness as our policies (``decide`` a period's quotas, then ``update`` with the
period's rewards). The prototype's class is copied verbatim except that its event-file ingestion is dropped and its
fill loop is bounded (``i < len(ranked) * (total_budget_runs + 1)``) so it can finish when the caps sum below
the budget; everything else, including the round-robin fill and the all-time counts, is the prototype's.
"""

from __future__ import annotations

from collections import defaultdict, deque
from math import log, sqrt

import numpy as np

from agent_pipeline.allocation.constraints import Bounds, fill


class PrototypeUCBAllocator:
    """The prototype's ``meta/allocator.py`` UCBAllocator (fill loop bounded, nothing else changed)."""

    def __init__(self, window=500, exploration=1.5):
        self.window = window
        self.exploration = exploration
        self.rewards = defaultdict(lambda: deque(maxlen=window))
        self.counts = defaultdict(int)

    def observe(self, agent, reward):
        self.rewards[agent].append(float(reward))
        self.counts[agent] += 1

    def score(self, agent: str, total_pulls: int) -> float:
        rs = self.rewards[agent]
        n = max(self.counts[agent], 1)
        mean = sum(rs)/len(rs) if rs else 0.0
        bonus = self.exploration * sqrt(log(max(total_pulls, 2)) / n)
        return mean + bonus

    def allocate(self, agents, min_runs=None, max_runs=None, total_budget_runs=100):
        min_runs = min_runs or {}
        max_runs = max_runs or {}

        total_pulls = sum(self.counts[a] for a in agents) + 1
        scores = {a: self.score(a, total_pulls) for a in agents}

        quotas = {a: int(min_runs.get(a, 0)) for a in agents}
        remaining = max(total_budget_runs - sum(quotas.values()), 0)

        ranked = sorted(agents, key=lambda a: scores[a], reverse=True)
        i = 0
        while remaining > 0 and ranked and i < len(ranked) * (total_budget_runs + 1):  # bounded (was unbounded)
            a = ranked[i % len(ranked)]
            if quotas[a] < int(max_runs.get(a, total_budget_runs)):
                quotas[a] += 1
                remaining -= 1
            i += 1

        return quotas, scores


class PrototypeAdapter:
    name = "prototype_ucb (as written)"

    def __init__(self, seed: int):
        self.alloc = PrototypeUCBAllocator()

    def decide(self, bounds: Bounds) -> tuple[dict[str, int], int]:
        quotas, _ = self.alloc.allocate(list(bounds.agents), dict(bounds.lo), dict(bounds.hi), bounds.budget)
        return quotas, bounds.budget - sum(quotas.values())

    def update(self, pairs):
        for a, r in pairs:
            self.alloc.observe(a, r)


def mabwiser_available() -> bool:
    try:
        import mabwiser  # noqa: F401
    except ImportError:
        return False
    return True


class MabwiserAdapter:
    """A MABWiser context-free bandit: its expectations per period, filled through our constrained fill.

    Deterministic learners (UCB1, epsilon-greedy's exploitation) give one expectation per arm per period; slots
    go to the best open arm. Thompson sampling is asked for fresh expectations per slot (one draw per slot), as
    our randomised policies are. MABWiser's Thompson sampling needs 0/1 rewards, so rewards are binarised at a
    threshold (above the running median of all rewards seen = 1).
    """

    def __init__(self, label: str, make_policy, seed: int, per_slot: bool = False, binarize: bool = False):
        from mabwiser.mab import MAB

        self.name = f"mabwiser {label}"
        self._MAB, self._make_policy, self._seed = MAB, make_policy, seed
        self.per_slot, self.binarize = per_slot, binarize
        self.mab = None
        self.seen: list[float] = []
        self.rng = np.random.default_rng(seed)

    def _ensure(self, arms):
        if self.mab is None:
            self.mab = self._MAB(arms=list(arms), learning_policy=self._make_policy(), seed=self._seed)
            self.fitted = False

    def decide(self, bounds: Bounds):
        self._ensure(bounds.agents)
        order = {a: i for i, a in enumerate(bounds.agents)}
        if not self.fitted:  # no data yet: explore uniformly
            def pick(slot, open_agents, quotas):
                return min(open_agents, key=lambda a: (quotas[a], order[a]))
            return fill(bounds, pick)[:2]
        if self.per_slot:
            def pick(slot, open_agents, quotas):
                exp = self.mab.predict_expectations()
                return max(open_agents, key=lambda a: (exp[a], -order[a]))
        else:
            exp = self.mab.predict_expectations()

            def pick(slot, open_agents, quotas):
                return max(open_agents, key=lambda a: (exp[a], -order[a]))
        return fill(bounds, pick)[:2]

    def update(self, pairs):
        if not pairs:
            return
        decisions = [a for a, _ in pairs]
        rewards = np.array([r for _, r in pairs], dtype=float)
        if self.binarize:
            self.seen.extend(rewards.tolist())
            self.seen = self.seen[-5000:]
            rewards = (rewards > np.median(self.seen)).astype(int)
        if self.fitted:
            self.mab.partial_fit(decisions, rewards.tolist())
        else:
            self.mab.fit(decisions, rewards.tolist())
            self.fitted = True


def mabwiser_policies():
    """(label, factory, per_slot, binarize) for the MABWiser learners compared."""
    from mabwiser.mab import LearningPolicy

    return [
        ("UCB1(alpha=1)", lambda: LearningPolicy.UCB1(alpha=1.0), False, False),
        ("EpsilonGreedy(0.1)", lambda: LearningPolicy.EpsilonGreedy(epsilon=0.1), True, False),
        ("ThompsonSampling(binarised)", lambda: LearningPolicy.ThompsonSampling(), True, True),
    ]
