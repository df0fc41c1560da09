"""Which agents exist: the built-ins plus the user's own, named in config.toml as ``module:callable``.

    [[agents]]
    name = "my_llm_signal"
    ref = "my_package.agents:LlmSignal"     # a class (built with params), an Agent object, or a function(ctx)
    kind = "signal"                           # signal | watcher | execution-sensitive
    strategy = "llm_news"
    timeout_sec = 20
    params = { model = "small" }

Every entry is imported and checked when the registry loads, so a typo fails the code location with a message
naming the entry instead of failing a run hours later.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import inspect
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from agent_pipeline.agents.builtin import BUILTIN_REFS
from agent_pipeline.agents.protocol import Agent, AgentContext, AgentKind, AgentResult
from agent_pipeline.numbers import finite_number
from agent_pipeline.settings import load_config

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
DEFAULT_TIMEOUT_SEC = 30.0


class AgentRegistryError(ValueError):
    """A registry entry cannot be used; the message names the entry and the problem."""


@dataclass(frozen=True)
class AgentSpec:
    """One registered agent: where its code is and how it is configured."""

    name: str
    ref: str
    kind: str | None = None
    strategy: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    timeout_sec: float = DEFAULT_TIMEOUT_SEC
    enabled: bool = True
    description: str = ""

    def fingerprint(self) -> str:
        """Identity of the strategy's code reference and configuration (what an approval is bound to)."""
        body = json.dumps({"ref": self.ref, "kind": self.kind, "strategy": self.strategy, "params": self.params},
                          sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).hexdigest()


class FunctionAgent:
    """Adapts a plain ``fn(ctx) -> output | AgentResult`` into an Agent."""

    def __init__(self, name: str, kind: str, strategy: str, fn: Callable[[AgentContext], Any]):
        self.name, self.kind, self.strategy, self._fn = name, kind, strategy, fn

    def run(self, ctx: AgentContext) -> AgentResult | list[dict[str, Any]]:
        return self._fn(ctx)


@dataclass(frozen=True)
class LoadedAgent:
    spec: AgentSpec
    agent: Agent

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return str(self.agent.kind)

    @property
    def strategy(self) -> str:
        return str(self.agent.strategy)


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


def _spec_from_entry(entry: Any, index: int) -> AgentSpec:
    where = f"agents[{index}]"
    if not isinstance(entry, dict):
        raise AgentRegistryError(f"{where}: must be a table, got {type(entry).__name__}")
    known = set(AgentSpec.__dataclass_fields__)
    unknown = sorted(set(entry) - known)
    if unknown:
        raise AgentRegistryError(f"{where} ({entry.get('name', '?')}): unknown key(s) {unknown}")
    for key in ("name", "ref"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise AgentRegistryError(f"{where}: {key!r} is required and must be a string")
    if not _NAME.match(entry["name"]):
        raise AgentRegistryError(f"{where}: name {entry['name']!r} must be lowercase letters, digits and _")
    timeout = entry.get("timeout_sec", DEFAULT_TIMEOUT_SEC)
    if finite_number(timeout) is None or timeout <= 0:
        raise AgentRegistryError(f"{where} ({entry['name']}): timeout_sec must be a positive number, got {timeout!r}")
    if not isinstance(entry.get("params", {}), dict):
        raise AgentRegistryError(f"{where} ({entry['name']}): params must be a table")
    return AgentSpec(**entry)


def builtin_specs() -> list[AgentSpec]:
    return [AgentSpec(name=name, ref=ref) for name, ref in BUILTIN_REFS.items()]


def load_registry(entries: Iterable[Any] = (), *, include_builtins: bool = True) -> dict[str, LoadedAgent]:
    """Validate and build every entry; duplicate names, bad refs and bad kinds raise AgentRegistryError."""
    specs = builtin_specs() if include_builtins else []
    specs += [_spec_from_entry(e, i) for i, e in enumerate(entries)]
    registry: dict[str, LoadedAgent] = {}
    for spec in specs:
        if spec.name in registry:
            raise AgentRegistryError(f"agent {spec.name!r} is registered twice; names must be unique")
        if spec.enabled:
            registry[spec.name] = build_agent(spec)
    return registry


def load_configured_registry(home=None) -> dict[str, LoadedAgent]:
    """The registry described by config.toml: ``builtin_agents`` (default true) and ``[[agents]]``."""
    config = load_config(home)
    include = config.get("builtin_agents", True)
    if not isinstance(include, bool):
        raise AgentRegistryError(f"config.toml: builtin_agents must be true or false, got {include!r}")
    return load_registry(config.get("agents", []), include_builtins=include)


__all__ = ["AgentRegistryError", "AgentSpec", "LoadedAgent", "build_agent", "builtin_specs",
           "load_configured_registry", "load_registry"]
