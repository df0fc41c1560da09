"""Run-budget constraints, validated once and filled in one bounded pass.

The prototype's fill walked the ranking round-robin (so quotas came out near-uniform) and never ended when the caps
summed below the budget. Here a period's runs are handed out slot by slot: each slot goes to the agent the
policy prefers *among those still under their caps* (per agent, and per strategy). The loop runs at most
``budget - sum(min)`` times and stops as soon as no agent is eligible, so it always terminates, and because the
caps are laminar (agent inside strategy) the greedy fill reaches the largest feasible total: the shortfall it
reports is exactly what the caps leave unallocated.

A picker may also decline a slot (return None): with a value floor, a slot that no eligible agent is worth is
held back. Then ``budget = sum(quotas) + shortfall + held_back``, where the shortfall is still exactly what the
caps leave and ``held_back`` is what was left unallocated on purpose.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


class AllocationError(ValueError):
    """Inputs to an allocation are invalid; the message names the agent or parameter at fault."""


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise AllocationError(f"{what} must be a whole number, got {value!r}")
    if isinstance(value, (float, np.floating)) and (not math.isfinite(value) or value != int(value)):
        raise AllocationError(f"{what} must be a whole number, got {value!r}")
    if value < 0:
        raise AllocationError(f"{what} must not be negative, got {value!r}")
    return int(value)


def check_agents(agents: Iterable[str]) -> list[str]:
    if isinstance(agents, (str, bytes)):
        raise AllocationError(f"agents must be a list of names, got the string {agents!r}")
    names = list(agents)
    for name in names:
        if not isinstance(name, str) or not name:
            raise AllocationError(f"agent names must be non-empty strings, got {name!r}")
    seen: set[str] = set()
    dupes = sorted({n for n in names if n in seen or seen.add(n)})
    if dupes:
        raise AllocationError(f"agents listed twice: {dupes}")
    return names


@dataclass(frozen=True)
class Bounds:
    """Validated per-agent and per-strategy run bounds for one period."""

    agents: tuple[str, ...]
    budget: int
    lo: dict[str, int]
    hi: dict[str, int]
    strategy_of: dict[str, str]
    strategy_hi: dict[str, int]

    @property
    def capacity(self) -> int:
        """Most runs the caps allow in total (agent caps, then strategy caps over them)."""
        per_strategy: dict[str, int] = {}
        for a in self.agents:
            s = self.strategy_of[a]
            per_strategy[s] = per_strategy.get(s, 0) + self.hi[a]
        return sum(min(total, self.strategy_hi.get(s, total)) for s, total in per_strategy.items())

    @property
    def expected_shortfall(self) -> int:
        return max(self.budget - self.capacity, 0)


def make_bounds(agents: Sequence[str], total_budget_runs: object, min_runs: Mapping[str, object] | None = None,
                max_runs: Mapping[str, object] | None = None, strategies: Mapping[str, str] | None = None,
                max_runs_per_strategy: Mapping[str, object] | None = None) -> Bounds:
    """Check every bound and name the first one that is wrong (negative, min above max, unknown agent...)."""
    names = check_agents(agents)
    budget = _count(total_budget_runs, "total_budget_runs")
    min_runs, max_runs = dict(min_runs or {}), dict(max_runs or {})
    strategies, strat_caps = dict(strategies or {}), dict(max_runs_per_strategy or {})
    for label, table in (("min_runs", min_runs), ("max_runs", max_runs), ("strategies", strategies)):
        unknown = sorted(set(table) - set(names))
        if unknown:
            raise AllocationError(f"{label} names agent(s) {unknown} that are not being allocated")
    lo = {a: _count(min_runs[a], f"min_runs[{a!r}]") if min_runs.get(a) is not None else 0 for a in names}
    hi = {a: _count(max_runs[a], f"max_runs[{a!r}]") if max_runs.get(a) is not None else budget for a in names}
    for a in names:
        if lo[a] > hi[a]:
            raise AllocationError(f"agent {a!r}: min_runs {lo[a]} is above max_runs {hi[a]}")
    strategy_of = {a: str(strategies.get(a) or a) for a in names}
    strategy_hi = {str(s): _count(v, f"max_runs_per_strategy[{s!r}]") for s, v in strat_caps.items()}
    for s, cap in strategy_hi.items():
        floor = sum(lo[a] for a in names if strategy_of[a] == s)
        if floor > cap:
            raise AllocationError(f"strategy {s!r}: its agents' min_runs sum to {floor}, above its cap {cap}")
    if sum(lo.values()) > budget:
        raise AllocationError(f"min_runs sum to {sum(lo.values())}, above total_budget_runs {budget}")
    return Bounds(tuple(names), budget, lo, hi, strategy_of, strategy_hi)


# A picker gets the slot index, the agents eligible for it, and the quotas so far; it returns one of them, or
# None to hold the slot back (no eligible agent is worth a run).
Picker = Callable[[int, list[str], Mapping[str, int]], str | None]


class Fill(NamedTuple):
    """What the fill decided: quotas, the runs the caps left (``shortfall``), the runs held back on purpose, and
    the agents that were still eligible in some held-back slot (the floor, not a cap, stopped them)."""

    quotas: dict[str, int]
    shortfall: int
    held_back: int
    held_from: frozenset[str]


def fill(bounds: Bounds, pick: Picker, first: Sequence[str] = ()) -> Fill:
    """Give each agent its minimum, then decide the remaining slots one at a time.

    ``first`` lists agents to serve one slot each before the picker is asked (agents with no history: they get
    explored, not starved). Only the slots the caps can place are decided (``budget - expected_shortfall``), so
    when nothing is held back the result is the greedy fill's and the shortfall is exactly what the caps leave.
    """
    quotas = dict(bounds.lo)
    strat_used: dict[str, int] = {}
    for a, q in quotas.items():
        s = bounds.strategy_of[a]
        strat_used[s] = strat_used.get(s, 0) + q
    decisions = bounds.budget - bounds.expected_shortfall - sum(quotas.values())

    def eligible(a: str) -> bool:
        s = bounds.strategy_of[a]
        return quotas[a] < bounds.hi[a] and strat_used.get(s, 0) < bounds.strategy_hi.get(s, bounds.budget + 1)

    def give(a: str) -> None:
        nonlocal decisions
        quotas[a] += 1
        s = bounds.strategy_of[a]
        strat_used[s] = strat_used.get(s, 0) + 1
        decisions -= 1

    for a in first:
        if decisions > 0 and quotas[a] == 0 and eligible(a):
            give(a)
    open_agents = [a for a in bounds.agents if eligible(a)]  # kept up to date as runs are given
    held, held_from = 0, set()
    slot = 0
    while decisions > 0 and open_agents:  # at most `decisions` iterations: each one gives or holds a run
        choice = pick(slot, open_agents, quotas)
        if choice is None:
            held += 1
            held_from.update(open_agents)
            decisions -= 1
        elif choice not in open_agents:
            raise RuntimeError(f"policy picked {choice!r}, which is not eligible for slot {slot}")
        else:
            give(choice)
            if not eligible(choice):
                full = bounds.strategy_of[choice]
                strategy_full = strat_used.get(full, 0) >= bounds.strategy_hi.get(full, bounds.budget + 1)
                open_agents = [a for a in open_agents if a != choice and
                               not (strategy_full and bounds.strategy_of[a] == full)]
        slot += 1
    shortfall = bounds.budget - sum(quotas.values()) - held
    return Fill(quotas, shortfall, held, frozenset(held_from))


STATUSES = ("capped", "at minimum", "held back", "allocated")


def statuses(bounds: Bounds, filled: Fill) -> dict[str, str]:
    """Why each agent got what it got, in the order a reader asks: was there anything to win; did a cap stop it;
    did the value floor; did it win nothing beyond its minimum; or did it win slots on the policy's ranking."""
    quotas = filled.quotas
    used: dict[str, int] = {}
    for a, q in quotas.items():
        used[bounds.strategy_of[a]] = used.get(bounds.strategy_of[a], 0) + q
    out = {}
    for a in bounds.agents:
        s = bounds.strategy_of[a]
        at_cap = quotas[a] >= bounds.hi[a] or used.get(s, 0) >= bounds.strategy_hi.get(s, bounds.budget + 1)
        if bounds.hi[a] == bounds.lo[a]:
            out[a] = "at minimum"
        elif at_cap:
            out[a] = "capped"
        elif a in filled.held_from:
            out[a] = "held back"
        elif quotas[a] == bounds.lo[a]:
            out[a] = "at minimum"
        else:
            out[a] = "allocated"
    return out


def violations(bounds: Bounds, quotas: Mapping[str, int], shortfall: int, held_back: int = 0) -> list[str]:
    """Every way an allocation breaks its bounds (empty when it obeys them); used by tests and the benchmark."""
    found = []
    if set(quotas) != set(bounds.agents):
        found.append(f"agents differ: {sorted(set(quotas) ^ set(bounds.agents))}")
        return found
    for a in bounds.agents:
        if not bounds.lo[a] <= quotas[a] <= bounds.hi[a]:
            found.append(f"{a}: quota {quotas[a]} outside [{bounds.lo[a]}, {bounds.hi[a]}]")
    per_strategy: dict[str, int] = {}
    for a in bounds.agents:
        per_strategy[bounds.strategy_of[a]] = per_strategy.get(bounds.strategy_of[a], 0) + quotas[a]
    for s, cap in bounds.strategy_hi.items():
        if per_strategy.get(s, 0) > cap:
            found.append(f"strategy {s}: {per_strategy[s]} runs above cap {cap}")
    if held_back < 0:
        found.append(f"held_back {held_back} is negative")
    if sum(quotas.values()) + shortfall + held_back != bounds.budget:
        found.append(f"quotas sum {sum(quotas.values())} + shortfall {shortfall} + held back {held_back} "
                     f"!= budget {bounds.budget}")
    if shortfall != bounds.expected_shortfall:
        found.append(f"shortfall {shortfall} != {bounds.expected_shortfall} the caps leave")
    return found
