"""Agent schedulers: one sensor per registered agent launches its ``agent__<name>`` runs per the quota in force.

One sensor per agent because a sensor can only launch jobs it targets, and the per-agent jobs belong to the agents
domain (one sensor per job keeps them the same definitions). Each tick reads the latest quotas read-only with a
short lock timeout, works out how many of the current period's slots are due (``allocation.schedule``), and
launches the new ones with run keys ``allocation:<agent>:<period>:<slot>``; the JSON cursor records what was
launched and advances in the same result as the run requests. Quota 0 launches nothing. The period length is
the ``[allocation] period_minutes`` the code location loaded, the same value the allocation cron is built from.
"""

import json
from datetime import UTC, datetime

import dagster as dg

from agent_pipeline.allocation.decision import period_start_for
from agent_pipeline.allocation.schedule import due_slots, run_key, slot_time
from agent_pipeline.allocation.tables import period_in_force
from agent_pipeline.defs.cursors import json_cursor
from agent_pipeline.defs.resources import StoreResource
from agent_pipeline.store import StoreBusy

MIN_INTERVAL_SECONDS = 30
READ_TIMEOUT_S = 2.0
MAX_RUNS_PER_TICK = 5


def _now() -> datetime:
    return datetime.now(UTC)


def scheduler_sensor_name(agent: str) -> str:
    return f"agent_scheduler__{agent}"


def build_scheduler_sensor(agent: str, job_name: str, period_minutes: int) -> dg.SensorDefinition:
    @dg.sensor(
        name=scheduler_sensor_name(agent),
        job_name=job_name,
        minimum_interval_seconds=MIN_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Launches `{job_name}` so agent `{agent}` runs its allocator quota each period, spread evenly "
                    "across the period (deterministic run keys; quota 0 launches nothing).",
    )
    def agent_scheduler(context: dg.SensorEvaluationContext, store: StoreResource):
        now = _now()
        try:
            with store.store().connect(read_only=True, timeout_s=READ_TIMEOUT_S) as conn:
                decided_period, rows = period_in_force(conn)
        except StoreBusy as exc:
            return dg.SkipReason(f"store busy, will retry next tick: {exc}")
        except FileNotFoundError:
            return dg.SkipReason("no store yet: nothing has been allocated")
        if decided_period is None:
            return dg.SkipReason("no allocation yet: allocator_quotas is decided on its own once reward_distributions "
                                 "has data (a few minutes after the first agent runs)")
        quotas = {row.agent: row.quota for row in rows if row.quota is not None}
        if agent not in quotas:
            return dg.SkipReason(f"agent {agent} has no quota in the period decided at {decided_period:%Y-%m-%d %H:%M}")
        quota = quotas[agent]
        if quota <= 0:
            return dg.SkipReason(f"quota 0 for {agent} (decided for {decided_period:%Y-%m-%d %H:%M}Z): not running it")
        period = period_start_for(now, period_minutes)
        cursor = json_cursor(context.cursor)
        launched = int(cursor.get("launched", 0)) if cursor.get("period") == period.isoformat() else 0
        due = due_slots(period, period_minutes, quota, now)
        if due <= launched:
            if launched >= quota:
                return dg.SkipReason(f"all {quota} runs of period {period:%H:%M}Z launched")
            nxt = slot_time(period, period_minutes, quota, launched)
            return dg.SkipReason(f"{launched}/{quota} runs launched this period; next due at {nxt:%H:%M:%S}Z")
        slots = range(launched, min(due, launched + MAX_RUNS_PER_TICK))
        requests = [dg.RunRequest(
            run_key=run_key(agent, period, slot),
            tags={"allocation/agent": agent, "allocation/period": period.isoformat(), "allocation/slot": str(slot),
                  "allocation/quota": str(quota), "allocation/decided_period": decided_period.isoformat()},
        ) for slot in slots]
        new_cursor = json.dumps({"period": period.isoformat(), "launched": slots.stop, "quota": quota})
        context.log.info(f"launching slots {slots.start}..{slots.stop - 1} of {agent}'s quota {quota} for period "
                         f"{period:%Y-%m-%d %H:%M}Z")
        return dg.SensorResult(run_requests=requests, cursor=new_cursor)

    return agent_scheduler
