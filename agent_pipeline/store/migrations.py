"""Forward-only schema migrations, versioned per component in one ``schema_versions`` table.

Each domain owns its tables and declares them once, as a ``Schema``: its component name and its migrations in
order (version N is the N-th SQL script), plus the schemas whose tables its own refer to. Components never edit
an applied script: a change is a new script appended to the list. The component names and the order of the
lists are what ``schema_versions`` records, so existing stores depend on both staying as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_pipeline.store.connection import begin

if TYPE_CHECKING:
    from agent_pipeline.store.connection import Store

_VERSIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_versions (
    component VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)
"""


@dataclass(frozen=True)
class Schema:
    """One component's tables: ``requires`` are brought up to date first (rewards read events, say)."""

    component: str
    migrations: tuple[str, ...]
    requires: tuple[Schema, ...] = ()

    def __post_init__(self) -> None:
        if not self.component or not isinstance(self.component, str):
            raise ValueError(f"a schema needs a component name, got {self.component!r}")
        object.__setattr__(self, "migrations", tuple(self.migrations))
        object.__setattr__(self, "requires", tuple(self.requires))
        for script in self.migrations:
            if not isinstance(script, str) or not script.strip():
                raise ValueError(f"schema {self.component!r}: every migration must be a non-empty SQL script")

    def ensure(self, store: Store, conn) -> None:
        """Apply what this store has not seen yet of this schema and of those it requires (idempotent).

        Call it outside an open transaction: each pending script runs in a transaction of its own.
        """
        store.ensure(conn, self)


def current_version(conn, component: str) -> int:
    conn.execute(_VERSIONS_DDL)
    row = conn.execute(
        "SELECT coalesce(max(version), 0) FROM schema_versions WHERE component = ?", [component]
    ).fetchone()
    return int(row[0]) if row else 0


def migrate(conn, component: str, migrations: Sequence[str]) -> int:
    """Apply scripts after the recorded version, each in its own transaction. Returns the new version."""
    version = current_version(conn, component)
    if version > len(migrations):
        raise RuntimeError(
            f"store schema for {component!r} is at version {version}, newer than this code knows "
            f"({len(migrations)}); upgrade agent_pipeline"
        )
    for number, script in enumerate(migrations[version:], start=version + 1):
        with begin(conn):
            conn.execute(script)
            conn.execute("INSERT INTO schema_versions (component, version) VALUES (?, ?)", [component, number])
    return len(migrations)
