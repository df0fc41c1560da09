"""Which agents are registered: ``builtin_agents`` and the ``[[agents]]`` entries of config.toml, as checked specs.

    builtin_agents = true                     # false: only your own agents
    [[agents]]
    name = "my_llm_signal"
    ref = "my_package.agents:LlmSignal"     # a class (built with params), an Agent object, or a function(ctx)
    kind = "signal"                           # signal | watcher | execution-sensitive
    strategy = "llm_news"
    timeout_sec = 20
    params = { model = "small" }

A spec is data: reading, checking and listing specs never imports the module a ``ref`` names, so a hostile or
broken ref cannot run at ``agents list``. ``agent_pipeline.agents.registry`` imports and builds the enabled ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent_pipeline.agent_names import NAME_PATTERN, NAME_RULE
from agent_pipeline.agents.builtin import BUILTIN_REFS
from agent_pipeline.agents.protocol import AgentKind
from agent_pipeline.config_fields import BOOL, NUMBER, TABLE, TEXT, ConfigTable, setting
from agent_pipeline.settings import ConfigError

DEFAULT_TIMEOUT_SEC = 30.0
MAX_TIMEOUT_SEC = 3_600.0  # a run longer than an hour is a hung run, whatever the agent does
KINDS = tuple(k.value for k in AgentKind)
REF_PATTERN = r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*"


class AgentRegistryError(ConfigError):
    """A registry entry cannot be used; the message names the entry and the problem."""


@dataclass(frozen=True)
class AgentSpec(ConfigTable):
    """One registered agent: where its code is and how it is configured."""

    SECTION = "agent spec:"
    ERROR = AgentRegistryError

    name: str = setting(kind=TEXT, pattern=NAME_PATTERN, doc="unique; names its jobs and ops",
                        pattern_doc=f"be {NAME_RULE}")
    ref: str = setting(kind=TEXT, pattern=REF_PATTERN, pattern_doc="look like 'package.module:callable'",
                       doc="a class (built with params), an agent object, or a function(ctx)")
    kind: str | None = setting(None, TEXT, optional=True, choices=KINDS,
                               doc="default: the agent's own; watchers keep a minimum, execution-sensitive are capped")
    strategy: str | None = setting(None, TEXT, optional=True, min_items=1, doc="default: the agent's own, or its name")
    params: dict[str, Any] = setting(kind=TABLE, factory=dict,  # noqa: RUF009
                                     doc="keyword arguments of the class, or ctx.params")
    timeout_sec: float = setting(DEFAULT_TIMEOUT_SEC, NUMBER, gt=0, le=MAX_TIMEOUT_SEC,
                                 doc="a run taking longer is a failed run")
    enabled: bool = setting(True, BOOL, doc="false: registered but never built or run")
    description: str = setting("", TEXT, doc="free text")

    def fingerprint(self) -> str:
        """Identity of the agent (its name), its code reference and configuration: what an approval and the
        built-ins' exemption are bound to, so another agent with the same code, or a user agent named like a
        built-in, inherits neither."""
        body = json.dumps({"name": self.name, "ref": self.ref, "kind": self.kind, "strategy": self.strategy,
                           "params": self.params}, sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).hexdigest()


def builtin_specs() -> list[AgentSpec]:
    return [AgentSpec(name=name, ref=ref) for name, ref in BUILTIN_REFS.items()]


def entry_where(index: int, entry: Any) -> str:
    """How messages name an entry: ``agents[2] (llm_news):``."""
    name = entry.get("name") if isinstance(entry, Mapping) else None
    return f"agents[{index}] ({name}):" if isinstance(name, str) and name else f"agents[{index}]:"


@dataclass(frozen=True)
class AgentsConfig:
    """The registry as data: whether the built-ins are in, and the user's entries (checked, in file order)."""

    builtin_agents: bool = True
    entries: tuple[AgentSpec, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.builtin_agents, bool):
            raise AgentRegistryError(f"config.toml: builtin_agents must be true or false, got {self.builtin_agents!r}")
        seen: set[str] = set()
        for spec in self.specs():
            if spec.name in seen:
                raise AgentRegistryError(f"agent {spec.name!r} is registered twice; names must be unique")
            seen.add(spec.name)

    @classmethod
    def from_document(cls, builtin_agents: Any = True, entries: Any = ()) -> AgentsConfig:
        """From config.toml's ``builtin_agents`` and ``[[agents]]`` (a list of tables); AgentSpec objects pass."""
        if isinstance(entries, (Mapping, str, bytes)) or not isinstance(entries, Iterable):
            raise AgentRegistryError(f"config.toml: agents must be an array of tables ([[agents]]), "
                                     f"got {type(entries).__name__}")
        specs = []
        for i, entry in enumerate(entries):
            if isinstance(entry, AgentSpec):
                specs.append(entry)
                continue
            if not isinstance(entry, Mapping):
                raise AgentRegistryError(f"agents[{i}]: must be a table, got {type(entry).__name__}")
            specs.append(AgentSpec.from_table(entry, entry_where(i, entry)))
        return cls(builtin_agents=builtin_agents, entries=tuple(specs))

    def specs(self) -> list[AgentSpec]:
        """Every registered spec, built-ins first, enabled or not."""
        return (builtin_specs() if self.builtin_agents else []) + list(self.entries)

    def enabled(self) -> dict[str, AgentSpec]:
        return {spec.name: spec for spec in self.specs() if spec.enabled}
