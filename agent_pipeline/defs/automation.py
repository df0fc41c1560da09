"""When the loop's assets materialize: Dagster's declarative automation, one cadence for the whole chain.

agent_events -> agent_rewards -> reward_distributions -> allocator_quotas closes on its own. On a fresh install each
asset materializes as soon as its upstream has data (the first agent run's events, then the rewards priced from
them, ...), so the first allocation follows the first agent runs within minutes instead of waiting for a clock.
After that the chain keeps the allocation period's cadence: at each tick of ``period_cron`` agent_rewards reprices
yesterday's and today's partitions (one run), reward_distributions follows once they are in, and allocator_quotas
decides in the same run as reward_distributions, only if its blocking checks pass (Dagster skips it within the run
when one fails). A decision that cannot be made (a failed check, a failed run) leaves the previous quotas in force
until the next tick.

``loop_automation_sensor`` (on by default) evaluates these conditions; its ticks, and each asset's Automation tab,
show which condition held and why.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

AUTOMATION_SENSOR = "loop_automation_sensor"
SENSOR_INTERVAL_SECONDS = 15
HOURLY_MINUTE = 10  # hourly periods are decided at minute 10, clear of the top of the hour's scheduled runs
REPRICED_DAYS = timedelta(days=2)  # yesterday's and today's partitions: the last hour and day reach across midnight


def period_cron(period_minutes: int) -> str:
    """A cron firing once per period: hourly periods at minute 10, shorter ones at their starts.

    Until a period's decision lands, the previous decision stays in force for it.
    """
    if period_minutes < 60:
        return f"*/{period_minutes} * * * *"
    hours = period_minutes // 60
    return f"{HOURLY_MINUTE} * * * *" if hours == 1 else f"{HOURLY_MINUTE} */{hours} * * *"


def next_decision_due(after: datetime, period_minutes: int) -> datetime:
    """The first tick of ``period_cron(period_minutes)`` after ``after``: when the next allocation is due."""
    minute = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    hours = period_minutes // 60
    for _ in range(2 * 24 * 60):  # every cron above fires at least once a day
        if period_minutes < 60:
            if minute.minute % period_minutes == 0:
                return minute
        elif minute.minute == HOURLY_MINUTE and minute.hour % hours == 0:
            return minute
        minute += timedelta(minutes=1)
    raise ValueError(f"no tick of {period_cron(period_minutes)!r} within two days of {after}")


def _first_time() -> dg.AutomationCondition:
    """Never materialized, and an upstream asset has just updated (or is requested in this tick)."""
    return (dg.AutomationCondition.missing() & dg.AutomationCondition.any_deps_updated().since_last_handled()
            ).with_label("first materialization once upstream has data")


def rewards_condition(period_minutes: int) -> dg.AutomationCondition:
    """agent_rewards: today's partition as soon as the first events exist, then yesterday's and today's once per
    period (repriced with or without new events, so the chain below it always gets its tick)."""
    cron = period_cron(period_minutes)
    tick = dg.AutomationCondition.cron_tick_passed(cron, "UTC").since_last_handled().with_label(
        f"allocation period tick passed ({cron} UTC)")
    return (
        dg.AutomationCondition.in_latest_time_window(REPRICED_DAYS)
        & (_first_time() | tick)
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"reprice recent days: first events, then every period ({cron} UTC)")


def downstream_condition(period_minutes: int) -> dg.AutomationCondition:
    """reward_distributions and allocator_quotas: first as soon as upstream has data, then once per period after
    every upstream asset updated since the tick; never while an upstream run is in progress or a blocking check of
    an upstream asset has failed."""
    cron = period_cron(period_minutes)
    cadence = (dg.AutomationCondition.cron_tick_passed(cron, "UTC").since_last_handled()
               & dg.AutomationCondition.all_deps_updated_since_cron(cron, "UTC")
               ).with_label(f"upstream updated since the period tick ({cron} UTC)")
    return (
        (_first_time() | cadence)
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label(f"after upstream, once per period ({cron} UTC)")


def build_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """The sensor that evaluates the loop's conditions, on by default (Dagster's default one starts stopped)."""
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        description="Materializes agent_rewards, reward_distributions and allocator_quotas when their automation "
                    "conditions hold: as soon as upstream has data on a fresh install, then once per allocation "
                    "period. Each tick lists what it requested and why.",
    )
