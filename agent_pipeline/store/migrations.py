"""Forward-only schema migrations, versioned per component in one ``schema_versions`` table.

Each domain owns its tables and lists its migrations in order; version N is the N-th SQL script. Components
never edit an applied script: a change is a new script appended to the list.
"""

from __future__ import annotations

import duckdb

_VERSIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_versions (
    component VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)
"""


def current_version(conn: duckdb.DuckDBPyConnection, component: str) -> int:
    conn.execute(_VERSIONS_DDL)
    row = conn.execute(
        "SELECT coalesce(max(version), 0) FROM schema_versions WHERE component = ?", [component]
    ).fetchone()
    return int(row[0]) if row else 0


def migrate(conn: duckdb.DuckDBPyConnection, component: str, migrations: list[str]) -> int:
    """Apply scripts after the recorded version, each in its own transaction. Returns the new version."""
    version = current_version(conn, component)
    if version > len(migrations):
        raise RuntimeError(
            f"store schema for {component!r} is at version {version}, newer than this code knows "
            f"({len(migrations)}); upgrade agent_pipeline"
        )
    for number, script in enumerate(migrations[version:], start=version + 1):
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(script)
            conn.execute("INSERT INTO schema_versions (component, version) VALUES (?, ?)", [component, number])
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return len(migrations)
