"""Dagster wiring for trading safety: table assets, the trading_safety asset, the circuit-breaker sensor, the
kill-switch job and a schedule that refreshes the safety view. The execution ops live in the agent jobs."""

from collections.abc import Mapping

import dagster as dg

from agent_pipeline.agents import LoadedAgent
from agent_pipeline.defs.trading.assets import TABLE_SPECS, TRADING_SAFETY, trading_safety
from agent_pipeline.defs.trading.control import kill_switch_control
from agent_pipeline.defs.trading.sensors import build_circuit_breaker
from agent_pipeline.pipeline_settings import Settings

REFRESH_JOB = "trading_safety_refresh"


def build_defs(settings: Settings, registry: Mapping[str, LoadedAgent]) -> dg.Definitions:
    refresh = dg.define_asset_job(
        REFRESH_JOB, selection=[TRADING_SAFETY],
        description="Re-read the kill switch, recent denials and approvals into the trading_safety asset.")
    schedule = dg.ScheduleDefinition(
        name="trading_safety_schedule", job=refresh, cron_schedule="*/5 * * * *",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Refreshes trading_safety every 5 minutes so the UI shows the current kill switch and denials.")
    return dg.Definitions(assets=[*TABLE_SPECS, trading_safety], jobs=[kill_switch_control, refresh],
                          sensors=[build_circuit_breaker(settings.guardrails)], schedules=[schedule])
