"""The quota tick sensor: one ``agent_tick`` run per tick window carries every agent slot due in it.

Each evaluation reads the latest quotas read-only with a short lock timeout and plans the tick
(``allocation.tick.plan_tick``) as of the start of the current tick window (``[tick] interval_seconds`` long,
counted from the period's start): the slots due by then that its JSON cursor has not launched yet, across every
agent, earliest first, at most ``[tick] max_slots_per_tick``. Planning as of the window's start, not the moment of
evaluation, makes a tick a function of (period, window, cursor): a sensor evaluated twice in one window plans the
same slots under the same run key ``tick:<period>:<window>``, and Dagster launches a run key once. The cursor,
``{"period", "tick", "launched": {agent: slots launched this period}}``, advances in the same result as the run
request; one tick is launched per window at most. Quota 0 launches nothing. The period length is the
``[allocation] period_minutes`` the code location loaded, the same value the allocation cron is built from.

The run's tags keep the allocation's vocabulary: ``allocation/period``, ``allocation/decided_period``,
``allocation/tick`` and ``allocation/slots``; each slot's identity (period, agent, slot index) travels in the run
config and makes the slot's event id, so a retried tick stores and orders nothing twice.
"""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from agent_pipeline.allocation.decision import period_start_for
from agent_pipeline.allocation.tables import period_in_force
from agent_pipeline.allocation.tick import plan_tick, tick_number, tick_run_key
from agent_pipeline.allocation.tick_config import TickConfig
from agent_pipeline.defs.agents.tick import PLAN_OP, TICK_JOB
from agent_pipeline.defs.cursors import json_cursor
from agent_pipeline.defs.resources import StoreResource
from agent_pipeline.store import StoreBusy

READ_TIMEOUT_S = 2.0
TICK_SENSOR = "agent_tick_sensor"


def _now() -> datetime:
    return datetime.now(UTC)


def _launched(cursor: dict, period: datetime) -> tuple[dict[str, int], int | None]:
    """The cursor's per-agent launched counts and last tick number, for ``period`` (a new period starts at 0)."""
    if cursor.get("period") != period.isoformat():
        return {}, None
    raw = cursor.get("launched")
    counts = {str(a): int(n) for a, n in raw.items() if isinstance(n, int)} if isinstance(raw, dict) else {}
    tick = cursor.get("tick")
    return counts, tick if isinstance(tick, int) else None


def build_tick_sensor(period_minutes: int, tick: TickConfig) -> dg.SensorDefinition:
    @dg.sensor(
        name=TICK_SENSOR,
        job_name=TICK_JOB,
        minimum_interval_seconds=tick.interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Every {tick.interval_seconds} s, launches one `{TICK_JOB}` run carrying every agent slot due "
                    "per the allocator's quotas (each agent's quota spread evenly across the period; run key "
                    "tick:<period>:<window>; quota 0 launches nothing).",
    )
    def agent_tick_sensor(context: dg.SensorEvaluationContext, store: StoreResource):
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
        quotas = {row.agent: int(row.quota) for row in rows if row.quota is not None}
        period = period_start_for(now, period_minutes)
        number = tick_number(period, now, tick.interval_seconds)
        launched, last_tick = _launched(json_cursor(context.cursor), period)
        if last_tick is not None and last_tick >= number:
            return dg.SkipReason(f"tick {number} of period {period:%H:%M}Z already launched; next window at "
                                 f"{period + timedelta(seconds=(number + 1) * tick.interval_seconds):%H:%M:%S}Z")
        window_start = period + timedelta(seconds=number * tick.interval_seconds)
        plan = plan_tick(period, period_minutes, quotas, launched, window_start, max_slots=tick.max_slots_per_tick)
        if not plan.slots:
            total = sum(q for q in quotas.values() if q > 0)
            return dg.SkipReason(f"no slot due in tick {number} of period {period:%H:%M}Z "
                                 f"({sum(launched.values())}/{total} launched this period)")
        request = dg.RunRequest(
            run_key=tick_run_key(period, number),
            run_config={"ops": {PLAN_OP: {"config": {"period_start": period.isoformat(), "tick": number,
                                                     "slots": [s.as_config() for s in plan.slots]}}}},
            tags={"allocation/period": period.isoformat(), "allocation/decided_period": decided_period.isoformat(),
                  "allocation/tick": str(number), "allocation/slots": str(len(plan.slots)),
                  # a retry re-runs every step: the slots' outputs live in the run's memory, and plan_tick
                  # leaves out what the first attempt stored
                  "dagster/retry_strategy": "ALL_STEPS"},
        )
        cursor = json.dumps({"period": period.isoformat(), "tick": number, "launched": plan.launched})
        context.log.info(f"launching tick {number} of period {period:%Y-%m-%d %H:%M}Z with {len(plan.slots)} due "
                         f"slots")
        return dg.SensorResult(run_requests=[request], cursor=cursor)

    return agent_tick_sensor
