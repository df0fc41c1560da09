"""Agents: the protocol, the built-ins, the registry of the user's own, and the instrumentation around a run."""

from agent_pipeline.agents.config import AgentsConfig
from agent_pipeline.agents.instrumentation import AgentOutputError, AgentTimeout, normalize_result, run_instrumented
from agent_pipeline.agents.protocol import Agent, AgentContext, AgentKind, AgentResult
from agent_pipeline.agents.registry import (
                                            AgentRegistryError,
                                            AgentSpec,
                                            LoadedAgent,
                                            build_agent,
                                            build_registry,
                                            load_registry,
)

__all__ = ["Agent", "AgentContext", "AgentKind", "AgentOutputError", "AgentRegistryError",
           "AgentResult", "AgentSpec", "AgentTimeout", "AgentsConfig", "LoadedAgent", "build_agent", "build_registry",
           "load_registry", "normalize_result", "run_instrumented"]
