"""Store tests run on both backends where the behaviour is meant to be the same: ``each_store`` is the DuckDB file
of the test's home and a fresh database on the session's PostgreSQL server."""

from __future__ import annotations

import pytest

from agent_pipeline.store import Store
from agent_pipeline_tests.postgres_server import postgres_server, postgres_url  # noqa: F401 (fixtures)

BACKENDS = ("duckdb", "postgresql")


@pytest.fixture(params=BACKENDS)
def each_store(request, pipeline_home):
    if request.param == "duckdb":
        return Store.at_home(pipeline_home)
    return Store(request.getfixturevalue("postgres_url"))


def address(store) -> str:
    """What another process passes to ``Store(...)`` to reach the same store."""
    return getattr(store, "url", None) or str(store.path)



def rows(store, sql, params=None) -> list[tuple]:
    """The rows of one query, on either backend."""
    with store.connect() as conn:
        return conn.execute(sql, params or []).fetchall()
