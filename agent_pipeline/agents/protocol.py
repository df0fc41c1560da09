"""The contract between the pipeline and an agent, built-in or the user's own.

An agent has a name, a kind and a strategy, and a ``run(ctx)`` that returns its output (the prototype's shape: a list
of dicts, e.g. ``[{"profit_pct": 0.5, ...}]``) and the cost it incurred. Kinds matter to the allocator:
watchers keep a minimum number of runs, execution-sensitive agents are capped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from agent_pipeline.market.base import MarketSource


class AgentKind(StrEnum):
    SIGNAL = "signal"
    WATCHER = "watcher"
    EXECUTION_SENSITIVE = "execution-sensitive"


@dataclass(frozen=True)
class AgentContext:
    """What an agent may look at: the time of the run, the market, its parameters, the run it belongs to."""

    now: datetime
    market: MarketSource
    params: Mapping[str, Any] = field(default_factory=dict)
    run_id: str = ""


@dataclass(frozen=True)
class AgentResult:
    """An agent's output plus what producing it cost in USD (LLM tokens, data fees); None when unknown."""

    output: list[dict[str, Any]]
    cost_usd: float | None = None


@runtime_checkable
class Agent(Protocol):
    name: str
    kind: AgentKind | str
    strategy: str

    def run(self, ctx: AgentContext) -> AgentResult | list[dict[str, Any]]:
        ...
