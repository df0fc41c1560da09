"""Built-in agents that do real computation on the market they are given."""

from agent_pipeline.agents.builtin.arbitrage import CrossVenueArbitrage
from agent_pipeline.agents.builtin.momentum import Momentum
from agent_pipeline.agents.builtin.regime import RegimeWatcher

# each built-in's registered name is its class's own (``identity``), so the two cannot drift apart
BUILTIN_REFS = {cls.name: f"{__name__}:{cls.__name__}" for cls in (CrossVenueArbitrage, Momentum, RegimeWatcher)}

__all__ = ["BUILTIN_REFS", "CrossVenueArbitrage", "Momentum", "RegimeWatcher"]
