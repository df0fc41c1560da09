"""The ``agent_events`` table: one row per agent run, the root of everything downstream.

A run's row is written in one short transaction as soon as the run ends (``append_event``); imports and
backfills use ``append_frame``, which moves a whole DataFrame in one INSERT ... SELECT.

``origin`` says who decided the row's reward: ``'computed'`` (the pipeline priced the run as it ended) or
``'imported'`` (a line of an imported file, whose reward was recorded elsewhere). ``source`` says where a row
came from: ``'dagster'`` (or another runner) for a run the pipeline watched, ``'import'`` for an imported line
with its own timestamp, and ``'import_undated'`` for an imported line without one, whose ``started_at`` is the
file's modification time: a guess, so never evidence that an agent is running.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from agent_pipeline.numbers import finite_number
from agent_pipeline.store.connection import Store, insert_sql, time_window
from agent_pipeline.store.migrations import Schema

EVENTS = Schema("events", [
    # v1: the run record. Nullable columns mean "not known", never a silent zero.
    """
    CREATE TABLE agent_events (
        event_id VARCHAR PRIMARY KEY,
        run_id VARCHAR NOT NULL,
        agent VARCHAR NOT NULL,
        strategy VARCHAR,
        kind VARCHAR,
        started_at TIMESTAMPTZ NOT NULL,
        latency_seconds DOUBLE,
        cost_usd DOUBLE,
        reward DOUBLE,
        error VARCHAR,
        error_type VARCHAR,
        output JSON,
        capital_usd DOUBLE,
        max_loss_usd DOUBLE,
        data_age_sec DOUBLE,
        reward_source VARCHAR NOT NULL DEFAULT 'computed',
        source VARCHAR NOT NULL DEFAULT 'dagster',
        ingested_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX agent_events_started_at ON agent_events (started_at);
    """,
    # v2: ``reward_source`` said where the reward came from, which ``agent_rewards`` also calls a source: renamed
    # ``origin``. DuckDB refuses to rename a column of a table that has an index, so the index is rebuilt around it.
    """
    DROP INDEX agent_events_started_at;
    ALTER TABLE agent_events RENAME COLUMN reward_source TO origin;
    CREATE INDEX agent_events_started_at ON agent_events (started_at);
    """,
])

IMPORT_SOURCE = "import"
UNDATED_IMPORT_SOURCE = "import_undated"
# ``source`` of the rows a run wrote as it ended (the Dagster op's default and ``agent-pipeline agents run``): the
# only rows that say what an agent is doing now. Whatever judges liveness or "the latest run" (the circuit breaker,
# the metrics' last-run and last-value gauges) counts these and nothing else.
LIVE_SOURCES: tuple[str, ...] = ("dagster", "cli")

COLUMNS: tuple[str, ...] = (
    "event_id", "run_id", "agent", "strategy", "kind", "started_at", "latency_seconds", "cost_usd", "reward",
    "error", "error_type", "output", "capital_usd", "max_loss_usd", "data_age_sec", "origin", "source",
)


def new_event_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class AgentEvent:
    """What one agent run produced, as stored. ``reward`` is None when the run failed."""

    run_id: str
    agent: str
    started_at: datetime
    latency_seconds: float
    strategy: str | None = None
    kind: str | None = None
    cost_usd: float | None = None
    reward: float | None = None
    error: str | None = None
    error_type: str | None = None
    output: Any = None
    capital_usd: float | None = None
    max_loss_usd: float | None = None
    data_age_sec: float | None = None
    origin: str = "computed"  # "computed" as the run ended, "imported" from a file (its reward was recorded)
    source: str = "dagster"
    event_id: str = field(default_factory=new_event_id)

    def __post_init__(self) -> None:
        if self.started_at.tzinfo is None:
            raise ValueError("AgentEvent.started_at must be timezone-aware (UTC)")

    @property
    def ok(self) -> bool:
        return self.error is None

    def row(self) -> list[Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.astimezone(UTC)
        data["output"] = None if self.output is None else json.dumps(self.output, default=str, allow_nan=False)
        for key in ("latency_seconds", "cost_usd", "reward", "capital_usd", "max_loss_usd", "data_age_sec"):
            data[key] = finite_number(data[key])
        return [data[c] for c in COLUMNS]


_INSERT_ONE = insert_sql("agent_events", COLUMNS)


def append_event(store: Store, event: AgentEvent, *, timeout_s: float | None = None, conn=None) -> None:
    """Write one run's event in its own short transaction.

    Opening DuckDB costs ~15 ms whatever the file; a long-lived worker that writes many events can pass the
    ``conn`` of a ``store.connect()`` block it holds and pay only the insert (<1 ms). One row under its own key
    needs no writer lock: a database that serialises writes itself (PostgreSQL) lets runs write side by side.
    """
    if conn is None:
        with store.connect(timeout_s=timeout_s, exclusive=False) as own:
            append_event(store, event, conn=own)
        return
    EVENTS.ensure(store, conn)
    conn.execute(_INSERT_ONE, event.row())


def events_frame(events: Iterable[AgentEvent]) -> pd.DataFrame:
    return pd.DataFrame([e.row() for e in events], columns=list(COLUMNS))


def append_frame(store: Store, frame: pd.DataFrame, *, conn=None, ignore_duplicates: bool = True) -> int:
    """Bulk insert a frame with (a subset of) ``COLUMNS``; rows whose event_id exists are skipped.

    Returns the number of rows inserted. Pass ``conn`` to join a caller's open connection/transaction.
    """
    cols = [c for c in COLUMNS if c in frame.columns]
    missing = {"event_id", "run_id", "agent", "started_at"} - set(cols)
    if missing:
        raise ValueError(f"append_frame: frame lacks required column(s) {sorted(missing)}")
    if conn is None:
        with store.transaction(schema=EVENTS) as own:
            return append_frame(store, frame, conn=own, ignore_duplicates=ignore_duplicates)
    EVENTS.ensure(store, conn)
    return store.insert_frame(conn, "agent_events", frame[cols], skip_conflicts=ignore_duplicates)


def read_events(store: Store, *, since: datetime | None = None, agent: str | None = None,
                read_only: bool = False, timeout_s: float | None = None) -> pd.DataFrame:
    """Events as a DataFrame (timestamps in UTC), optionally since a time and for one agent."""
    where, params = time_window(since)
    if agent is not None:
        where.append("agent = ?")
        params.append(agent)
    sql = "SELECT * FROM agent_events" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY started_at"
    return store.read_frame(sql, params, table="agent_events", columns=COLUMNS, schema=EVENTS, read_only=read_only,
                            timeout_s=timeout_s)
