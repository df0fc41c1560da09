"""Dagster wiring for reward history: the assets, their jobs and schedules (the reward_config resource is one of
the shared resources, ``agent_pipeline.defs.resources``, since the agent ops price runs with it too)."""

from collections.abc import Mapping
from datetime import timedelta

import dagster as dg

from agent_pipeline.agents import LoadedAgent
from agent_pipeline.defs.reward.assets import AGENT_REWARDS, REWARD_DISTRIBUTIONS, build_assets, daily_partitions
from agent_pipeline.pipeline_settings import Settings

REWARDS_DAILY_JOB = "agent_rewards_daily"
REWARD_HISTORY_HOURLY_JOB = "reward_history_hourly"


def build_defs(settings: Settings, registry: Mapping[str, LoadedAgent]) -> dg.Definitions:
    partitions = daily_partitions(settings.reward.history.history_start)
    assets = build_assets(partitions)
    rewards_job = dg.define_asset_job(
        REWARDS_DAILY_JOB, selection=dg.AssetSelection.assets(AGENT_REWARDS),
        description="Recompute agent_rewards for one day (or, as a backfill, any range of days in one run).",
        tags={"domain": "rewards"},
    )
    hourly_job = dg.define_asset_job(
        REWARD_HISTORY_HOURLY_JOB,
        selection=dg.AssetSelection.assets(AGENT_REWARDS, REWARD_DISTRIBUTIONS),
        description="Refresh recent agent_rewards partitions, then the rolling reward_distributions (with the "
                    "blocking reward_collapse check).",
        tags={"domain": "rewards"},
    )

    @dg.schedule(
        name="agent_rewards_daily_schedule", job=rewards_job, cron_schedule="15 0 * * *",
        execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every day at 00:15 UTC, finalize yesterday's agent_rewards partition.",
    )
    def agent_rewards_daily_schedule(context: dg.ScheduleEvaluationContext):
        day = (context.scheduled_execution_time - timedelta(days=1)).strftime("%Y-%m-%d")
        return dg.RunRequest(run_key=f"agent_rewards:{day}", partition_key=day)

    @dg.schedule(
        name="reward_distributions_hourly_schedule", job=hourly_job, cron_schedule="5 * * * *",
        execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every hour at :05, reprice yesterday's and today's events (one run) and materialize "
                    "reward_distributions.",
    )
    def reward_distributions_hourly_schedule(context: dg.ScheduleEvaluationContext):
        # yesterday and today in one run: the last hour and day reach across midnight before 00:15 finalizes it
        when = context.scheduled_execution_time
        today = when.strftime("%Y-%m-%d")
        first = max((when - timedelta(days=1)).strftime("%Y-%m-%d"), partitions.get_first_partition_key())
        return dg.RunRequest(
            run_key=f"reward_history:{when:%Y-%m-%dT%H:%M}",
            tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": today},
        )

    return dg.Definitions(
        assets=assets,
        jobs=[rewards_job, hourly_job],
        schedules=[agent_rewards_daily_schedule, reward_distributions_hourly_schedule],
    )
