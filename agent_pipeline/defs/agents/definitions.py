"""The agents domain's definitions: the agent_events root asset, the agent jobs and the bootstrap schedule.

Once the allocator has decided quotas, ``agent_tick_sensor`` (allocation domain) launches one ``agent_tick`` run
per tick window carrying every agent slot due in it. Before that, on a fresh install, ``agent_runs_schedule`` runs every agent once a minute
so history builds up and the allocator has rewards to learn from; it steps aside as soon as quotas are in force.
"""

from collections.abc import Mapping

import dagster as dg

from agent_pipeline.agents import LoadedAgent
from agent_pipeline.allocation.tables import period_in_force
from agent_pipeline.defs.agents.jobs import AGENT_RUNS_JOB, build_agent_jobs
from agent_pipeline.defs.agents.ops import AGENT_EVENTS
from agent_pipeline.defs.agents.tick import agent_tick_job
from agent_pipeline.defs.resources import StoreResource
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.store import StoreBusy

AGENT_RUNS_CRON = "* * * * *"
READ_TIMEOUT_S = 2.0


def quotas_in_force(store: StoreResource):
    """The decided period in force, or None before the allocator's first decision (or with no store yet)."""
    try:
        with store.store().connect(read_only=True, timeout_s=READ_TIMEOUT_S) as conn:
            return period_in_force(conn)[0]
    except FileNotFoundError:
        return None


@dg.schedule(
    name="agent_runs_schedule",
    job_name=AGENT_RUNS_JOB,
    cron_schedule=AGENT_RUNS_CRON,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Bootstrap: runs every registered agent once a minute until the allocator has decided quotas; "
                "from then on agent_tick_sensor runs each agent per its quota and this schedule skips.",
)
def agent_runs_schedule(context: dg.ScheduleEvaluationContext, store: StoreResource):
    try:
        period = quotas_in_force(store)
    except StoreBusy as exc:
        return dg.SkipReason(f"store busy, not launching this minute: {exc}")
    if period is not None:
        return dg.SkipReason(f"allocator quotas in force (period {period:%Y-%m-%d %H:%M}Z): "
                             "agent_tick_sensor launches the due slots per quota")
    tick = context.scheduled_execution_time
    return dg.RunRequest(run_key=f"bootstrap:{tick:%Y%m%dT%H%M}" if tick else None,
                         tags={"launched_by": "agent_runs_schedule"})


def build_defs(settings: Settings, registry: Mapping[str, LoadedAgent]) -> dg.Definitions:
    jobs = build_agent_jobs(registry, settings) + ([agent_tick_job(registry, settings)] if registry else [])
    agent_events = dg.AssetSpec(
        AGENT_EVENTS,
        description="One row per agent run (latency, cost, reward, error, raw output) in the DuckDB table "
                    "agent_events. Materialized by every agent run (its numbers labelled with the agent, so the "
                    "Plots tab draws one line per agent) and by `agent-pipeline import-events`; agent_rewards "
                    "records its row count and columns once per allocation period.",
        group_name="events",
        kinds={"duckdb"},
        owners=["team:agents"],
        tags={"domain": "agents", "loop": "allocation"},
        metadata={"dagster/table_name": "agent_events", "agents": ", ".join(sorted(registry))},
    )
    return dg.Definitions(assets=[agent_events], jobs=jobs, schedules=[agent_runs_schedule])
