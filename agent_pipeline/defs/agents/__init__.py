"""Dagster wiring for agent runs: the agent_events asset, one op per agent, jobs and the schedule."""

from __future__ import annotations

import dagster as dg

from agent_pipeline.agents import load_configured_registry
from agent_pipeline.defs.agents.jobs import build_agent_jobs
from agent_pipeline.defs.agents.ops import AGENT_EVENTS

AGENT_RUNS_CRON = "* * * * *"


def build_defs() -> dg.Definitions:
    registry = load_configured_registry()
    jobs = build_agent_jobs(registry)
    agent_runs = jobs[0]
    agent_events = dg.AssetSpec(
        AGENT_EVENTS,
        description="One row per agent run (latency, cost, reward, error, raw output) in the DuckDB table "
                    "agent_events. Materialized by the agent ops, and by `agent-pipeline import-events`.",
        group_name="events",
        kinds={"duckdb"},
        metadata={"table": "agent_events", "agents": ", ".join(sorted(registry))},
    )
    schedule = dg.ScheduleDefinition(
        name="agent_runs_schedule",
        job=agent_runs,
        cron_schedule=AGENT_RUNS_CRON,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Runs every registered agent once a minute, so the store and the UI fill without clicking.",
    )
    return dg.Definitions(assets=[agent_events], jobs=jobs, schedules=[schedule])
