"""Which agents run: the built-ins plus the user's own, imported and built from their checked specs.

The specs (``agent_pipeline.agents.config``) are read once, with the rest of the settings; ``build_registry``
imports and constructs every enabled one, so a missing module, an attribute that is not callable or a bad kind
fails the code location with a message naming the entry instead of failing a run hours later. Listing the
registry reads the specs only and runs no user code.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from agent_pipeline.agents.config import DEFAULT_TIMEOUT_SEC, AgentRegistryError, AgentsConfig, AgentSpec, builtin_specs
from agent_pipeline.agents.protocol import Agent, AgentContext, AgentKind, AgentResult


class FunctionAgent:
    """Adapts a plain ``fn(ctx) -> output | AgentResult`` into an Agent."""

    def __init__(self, name: str, kind: str, strategy: str, fn: Callable[[AgentContext], Any]):
        self.name, self.kind, self.strategy, self._fn = name, kind, strategy, fn

    def run(self, ctx: AgentContext) -> AgentResult | list[dict[str, Any]]:
        return self._fn(ctx)


def _plain_label(value: Any) -> str:
    """A label as an exact ``str``: a str subclass (its own ``__eq__``, ``__str__``) is copied out of it."""
    return str.__str__(value) if isinstance(value, str) else str.__str__(str(value))


@dataclass(frozen=True)
class LoadedAgent:
    """A registered agent and the identity it trades under, fixed when it is loaded.

    ``strategy`` and ``kind`` are read once here (the spec's, else the agent object's, else the name) as plain
    strings: an agent that renames itself while it runs (an attribute set in ``run``, a property answering
    differently on each read) cannot make its events, its orders or its approvals belong to another strategy.
    """

    spec: AgentSpec
    agent: Agent
    strategy: str = ""
    kind: str = ""

    def __post_init__(self) -> None:
        strategy = self.strategy or self.spec.strategy or getattr(self.agent, "strategy", None) or self.spec.name
        kind = self.kind or self.spec.kind or getattr(self.agent, "kind", None) or AgentKind.SIGNAL
        object.__setattr__(self, "strategy", _plain_label(strategy))
        object.__setattr__(self, "kind", _plain_label(kind))

    @property
    def name(self) -> str:
        return self.spec.name


def _resolve(spec: AgentSpec) -> Any:
    module_name, sep, attr = spec.ref.partition(":")
    if not sep or not module_name or not attr:
        raise AgentRegistryError(f"agent {spec.name!r}: ref {spec.ref!r} must look like 'package.module:callable'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AgentRegistryError(f"agent {spec.name!r}: cannot import module {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise AgentRegistryError(f"agent {spec.name!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def build_agent(spec: AgentSpec) -> LoadedAgent:
    """Import and construct one agent, applying the spec's name, kind and strategy."""
    obj = _resolve(spec)
    if inspect.isclass(obj):
        try:
            agent = obj(**copy.deepcopy(spec.params))  # the agent keeps no reference into the spec it is bound to
        except TypeError as exc:
            raise AgentRegistryError(f"agent {spec.name!r}: {spec.ref} rejected params {spec.params}: {exc}") from exc
    elif callable(getattr(obj, "run", None)):
        agent = obj
    elif callable(obj):
        agent = FunctionAgent(spec.name, spec.kind or AgentKind.SIGNAL, spec.strategy or spec.name, obj)
    else:
        raise AgentRegistryError(f"agent {spec.name!r}: {spec.ref} is not callable and has no run() method")
    for attr, value in (("name", spec.name), ("kind", spec.kind), ("strategy", spec.strategy)):
        if value is not None:
            try:
                setattr(agent, attr, value)
            except AttributeError as exc:
                raise AgentRegistryError(f"agent {spec.name!r}: cannot set {attr} on {spec.ref}: {exc}") from exc
    kind = getattr(agent, "kind", None)
    if str(kind) not in {k.value for k in AgentKind}:
        raise AgentRegistryError(
            f"agent {spec.name!r}: kind {kind!r} is not one of {[k.value for k in AgentKind]}")
    if not getattr(agent, "strategy", None):
        agent.strategy = spec.name
    return LoadedAgent(spec, agent)


def build_registry(agents: AgentsConfig) -> dict[str, LoadedAgent]:
    """Import and build every enabled spec (names are unique: ``AgentsConfig`` checked that)."""
    return {name: build_agent(spec) for name, spec in agents.enabled().items()}


def load_registry(entries: Iterable[Any] = (), *, include_builtins: bool = True) -> dict[str, LoadedAgent]:
    """Check and build ``entries`` (``[[agents]]`` tables or specs); duplicate names, bad refs and bad kinds raise
    AgentRegistryError naming the entry."""
    return build_registry(AgentsConfig.from_document(include_builtins, list(entries)))


__all__ = ["DEFAULT_TIMEOUT_SEC", "AgentRegistryError", "AgentSpec", "AgentsConfig", "LoadedAgent", "build_agent",
           "build_registry", "builtin_specs", "load_registry"]
