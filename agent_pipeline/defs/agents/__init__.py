"""Dagster wiring for agent runs: the agent_events asset, one op per agent, jobs and the bootstrap schedule."""

from agent_pipeline.defs.agents.definitions import build_defs

__all__ = ["build_defs"]
