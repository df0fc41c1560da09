"""Allocation: how often each agent runs and how much capital it sizes orders with (pure, no Dagster).

``make_allocator(policy, **params)`` builds a policy; every policy has ``observe(agent, reward)`` and
``allocate(agents, min_runs=None, max_runs=None, total_budget_runs=100, value_floor=None)`` returning an
``Allocation`` that unpacks as ``quotas, scores = ...`` and carries ``.shortfall`` (runs the caps left
unallocated), ``.held_back`` (runs no agent was worth with a ``value_floor``) and ``.explanations`` (per agent,
why it got what it got).
"""

from agent_pipeline.allocation.capital import CapitalPlan, allocate_capital
from agent_pipeline.allocation.config import AllocationConfig
from agent_pipeline.allocation.constraints import AllocationError, Bounds, make_bounds, violations
from agent_pipeline.allocation.policies import (
                                                DEFAULT_POLICY,
                                                POLICIES,
                                                BaseAllocator,
                                                GLRThompsonAllocator,
                                                ThompsonAllocator,
                                                UCBAllocator,
                                                UniformAllocator,
                                                make_allocator,
)
from agent_pipeline.allocation.result import Allocation

__all__ = ["DEFAULT_POLICY", "POLICIES", "Allocation", "AllocationConfig", "AllocationError", "BaseAllocator",
           "Bounds", "CapitalPlan", "GLRThompsonAllocator", "ThompsonAllocator", "UCBAllocator", "UniformAllocator",
           "allocate_capital", "make_allocator", "make_bounds", "violations"]
