"""A built-in's identity, declared in one place: the three fields every agent has (``protocol.Agent``).

Each built-in derives from ``identity(...)`` instead of repeating the fields with its own defaults. They stay
dataclass fields, first and in the same order, so a spec may still override them (the registry sets them) and the
class itself answers its name, which is where ``BUILTIN_REFS`` reads it from.
"""

from __future__ import annotations

from dataclasses import make_dataclass

from agent_pipeline.agents.protocol import AgentKind


def identity(name: str, kind: AgentKind, strategy: str | None = None) -> type:
    """A dataclass base with fields ``name``, ``strategy`` (default: the name) and ``kind``, defaulting to these."""
    base = make_dataclass(f"Identity_{name}", [("name", str, name), ("strategy", str, strategy or name),
                                               ("kind", AgentKind, kind)])
    base.__module__ = __name__
    return base
