"""One period's decision from configuration, the registered agents and their recent rewards, and its replay.

The decision record holds everything ``allocate`` was called with (agents, kinds, strategies, bounds, capital
plan, policy, parameters, the period's seed) plus a digest of the rewards it observed, so a decision can be
explained from the record alone and replayed exactly from the same rewards (``replay`` refuses rewards whose
digest differs, e.g. after the reward history was recomputed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent_pipeline.allocation.capital import CapitalPlan
from agent_pipeline.allocation.config import AllocationConfig
from agent_pipeline.allocation.policies import make_allocator
from agent_pipeline.allocation.result import Allocation

CAPITAL_KINDS = ("signal", "execution-sensitive")  # watchers observe; they size no orders


@dataclass(frozen=True)
class AgentInfo:
    name: str
    kind: str
    strategy: str


def period_start_for(now: datetime, period_minutes: int) -> datetime:
    """The start of the period containing ``now`` (UTC, aligned to midnight)."""
    now = now.astimezone(UTC)
    minutes = now.hour * 60 + now.minute
    start = minutes - minutes % period_minutes
    return now.replace(hour=start // 60, minute=start % 60, second=0, microsecond=0)


def period_seed(base_seed: int, period_start: datetime) -> int:
    """A per-period seed derived from the base seed: reproducible, yet different every period."""
    digest = hashlib.sha256(f"{base_seed}:{period_start.astimezone(UTC).isoformat()}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def rewards_digest(pairs: Sequence[tuple[str, float]]) -> str:
    h = hashlib.sha256()
    for agent, reward in pairs:
        h.update(f"{agent}\x00{float(reward)!r}\n".encode())
    return h.hexdigest()


def _run(request: Mapping[str, Any], pairs: Iterable[tuple[str, float]]) -> Allocation:
    params = dict(request["parameters"])
    allocator = make_allocator(request["policy"], **params)
    allocator.observe_many(pairs)
    plan = CapitalPlan(**request["capital_plan"]) if request.get("capital_plan") is not None else None
    return allocator.allocate(
        request["agents"], request["min_runs"], request["max_runs"], request["total_budget_runs"],
        strategies=request["strategies"], max_runs_per_strategy=request["max_runs_per_strategy"],
        capital=plan, capital_agents=request["capital_agents"],
        value_floor=request.get("value_floor"))  # records from before the floor existed spent the budget


def decide(config: AllocationConfig, agents: Sequence[AgentInfo], pairs: Sequence[tuple[str, float]],
           period_start: datetime) -> tuple[Allocation, dict[str, Any]]:
    """Allocate one period. ``pairs`` are (agent, reward) in the order they happened (oldest first)."""
    names = [a.name for a in agents]
    meta = {a.name: (a.kind, a.strategy) for a in agents}
    strategies = {a.name: a.strategy for a in agents}
    lo, hi = config.bounds_for(meta)
    params = config.policy_params(period_seed(config.seed, period_start))
    plan = config.capital_plan(strategies)
    request = {
        "policy": config.policy, "parameters": params, "agents": names,
        "kinds": {a.name: a.kind for a in agents}, "strategies": strategies,
        "min_runs": lo, "max_runs": hi, "total_budget_runs": config.total_budget_runs,
        "max_runs_per_strategy": {s: v for s, v in config.max_runs_per_strategy.items()
                                  if s in set(strategies.values())},
        "capital_plan": {"total_capital_usd": plan.total_capital_usd, "kelly_fraction": plan.kelly_fraction,
                         "min_samples": plan.min_samples, "max_capital_per_agent": plan.max_capital_per_agent,
                         "max_capital_per_strategy": dict(plan.max_capital_per_strategy or {})},
        "capital_agents": [a.name for a in agents if a.kind in CAPITAL_KINDS],
        "value_floor": config.value_floor,
    }
    known = set(names)
    used = [(a, float(r)) for a, r in pairs if a in known]
    allocation = _run(request, used)
    record = {
        "period_start": period_start.astimezone(UTC).isoformat(),
        "request": request,
        "inputs": {"rewards": len(used), "sha256": rewards_digest(used),
                   "per_agent": {n: sum(1 for a, _ in used if a == n) for n in names}},
        **allocation.record(),
        "seed": params.get("seed"),
    }
    return allocation, record


def replay(record: Mapping[str, Any], pairs: Sequence[tuple[str, float]]) -> Allocation:
    """Recompute a recorded decision from the same rewards; raises ValueError if the rewards differ."""
    used = [(a, float(r)) for a, r in pairs if a in set(record["request"]["agents"])]
    digest = rewards_digest(used)
    if digest != record["inputs"]["sha256"]:
        raise ValueError(f"replay: the rewards given ({len(used)}) are not the ones the decision observed "
                         f"({record['inputs']['rewards']}); digest {digest[:12]} != "
                         f"{record['inputs']['sha256'][:12]}")
    return _run(record["request"], used)


def record_json(record: Mapping[str, Any]) -> str:
    """The one encoding of a decision record, as stored in ``allocator_decisions`` and read back for a replay."""
    return json.dumps(record, sort_keys=True, allow_nan=False, default=str)
