"""Dagster wiring for allocation: the allocator_quotas asset, its schedule, and the per-agent schedulers."""

import dagster as dg

from agent_pipeline.agents import load_configured_registry
from agent_pipeline.allocation import AllocationConfig
from agent_pipeline.defs.agents.jobs import single_agent_job_name
from agent_pipeline.defs.allocation.assets import allocator_quotas, allocator_quotas_job, build_schedule
from agent_pipeline.defs.allocation.scheduler import build_scheduler_sensor


def build_defs() -> dg.Definitions:
    cfg = AllocationConfig.load()  # a bad [allocation] table fails the code location, naming the key
    registry = load_configured_registry()
    sensors = [build_scheduler_sensor(name, single_agent_job_name(name)) for name in sorted(registry)]
    return dg.Definitions(assets=[allocator_quotas], jobs=[allocator_quotas_job],
                          schedules=[build_schedule(cfg.period_minutes)], sensors=sensors)
