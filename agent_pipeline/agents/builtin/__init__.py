"""Built-in agents that do real computation on the market they are given."""

from agent_pipeline.agents.builtin.arbitrage import CrossVenueArbitrage
from agent_pipeline.agents.builtin.momentum import Momentum
from agent_pipeline.agents.builtin.regime import RegimeWatcher

BUILTIN_REFS = {
    "cross_venue_arb": "agent_pipeline.agents.builtin:CrossVenueArbitrage",
    "momentum": "agent_pipeline.agents.builtin:Momentum",
    "regime_watcher": "agent_pipeline.agents.builtin:RegimeWatcher",
}

__all__ = ["BUILTIN_REFS", "CrossVenueArbitrage", "Momentum", "RegimeWatcher"]
