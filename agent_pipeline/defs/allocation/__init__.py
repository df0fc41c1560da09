"""Dagster wiring for allocation: the allocator_quotas asset (on the loop's automation) and the quota tick sensor.

The automation's cron and the tick sensor take ``period_minutes`` from the one settings object, so they cannot
disagree.
"""

from collections.abc import Mapping

import dagster as dg

from agent_pipeline.agents import LoadedAgent
from agent_pipeline.allocation.decision import AgentInfo
from agent_pipeline.defs.allocation.assets import allocator_quotas_job, build_allocator_quotas
from agent_pipeline.defs.allocation.scheduler import build_tick_sensor
from agent_pipeline.pipeline_settings import Settings


def build_defs(settings: Settings, registry: Mapping[str, LoadedAgent]) -> dg.Definitions:
    period = settings.allocation.period_minutes
    agents = [AgentInfo(name, loaded.kind, loaded.strategy) for name, loaded in sorted(registry.items())]
    sensors = [build_tick_sensor(period, settings.tick)] if registry else []
    quotas = build_allocator_quotas(settings.allocation, agents, settings.reward.collapse)
    return dg.Definitions(assets=[quotas], jobs=[allocator_quotas_job], sensors=sensors)
