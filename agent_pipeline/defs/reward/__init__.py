"""Dagster wiring for reward history: the assets, their automation and a job for a manual refresh (the reward_config
resource is one of the shared resources, ``agent_pipeline.defs.resources``, since the agent ops price runs with it
too)."""

from collections.abc import Mapping
from datetime import UTC, datetime

import dagster as dg

from agent_pipeline.agents import LoadedAgent
from agent_pipeline.defs.reward.assets import AGENT_REWARDS, REWARD_DISTRIBUTIONS, build_assets, daily_partitions
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.reward.partitions import history_start
from agent_pipeline.store import Store

REWARD_HISTORY_JOB = "reward_history"
LOAD_TIMEOUT_S = 10.0


def build_defs(settings: Settings, registry: Mapping[str, LoadedAgent]) -> dg.Definitions:
    start, origin = history_start(settings.reward.history.history_start, Store(settings.store_location),
                                  datetime.now(UTC).date(), timeout_s=LOAD_TIMEOUT_S)
    assets = build_assets(daily_partitions(start), settings.allocation.period_minutes, start_origin=origin)
    history_job = dg.define_asset_job(
        REWARD_HISTORY_JOB,
        selection=dg.AssetSelection.assets(AGENT_REWARDS, REWARD_DISTRIBUTIONS),
        description="Reprice agent_rewards over the chosen partitions (launch it with a partition range), then "
                    "refresh reward_distributions and its blocking checks. The automation does this every "
                    "allocation period on its own; this job is for a refresh by hand.",
        tags={"domain": "rewards"},
    )
    return dg.Definitions(assets=assets, jobs=[history_job])
