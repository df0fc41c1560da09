"""``agent_tick``: one run carries every agent slot the quota tick found due, one op execution per slot.

``plan_tick`` reads the slots from the run config (the tick sensor wrote them), drops those whose event is already
stored (a retried or re-launched tick), and fans the rest out per agent (``DynamicOut`` ``slots__<agent>``), so
process start and code load are paid once per tick. Each slot is an execution of ``run_<agent>__slot`` (tags
``agent``, ``kind``), run on the threads of the one run process (``thread_executor``) so agents that wait on a model
overlap, at most ``[tick] max_concurrent`` at once and ``agent_concurrency`` per agent (Dagster's tag concurrency
limits on the ``agent`` tag). A slot op measures the run and yields its event as output with the event's
metadata; if the agent failed, it fails after handing the event on.

``record_tick`` then writes the tick in one store transaction on one connection: the events (each slot's event id
derives from its key, so a slot already stored is skipped, never doubled) and every new event's trade proposals
through the execution layer (gate -> paper broker, the batch joining the same transaction), inside one hold of the
kill switch's guard: a trip waits for the tick to commit. If the run dies before that commit nothing of the tick is
stored, and a retry runs those slots again; after it, a retry finds them stored and skips them.
"""

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from agent_pipeline.agents import LoadedAgent
from agent_pipeline.agents.instrumentation import run_and_record
from agent_pipeline.allocation.tick import slot_event_id, slot_key
from agent_pipeline.allocation.tick_config import TickConfig
from agent_pipeline.defs.agents.jobs import agent_job_resources
from agent_pipeline.defs.agents.ops import AGENT_EVENTS, agent_op, run_outcome, run_preparer
from agent_pipeline.defs.agents.thread_executor import threaded_executor
from agent_pipeline.defs.resources import KillSwitchResource, MarketResource, RewardConfigResource, StoreResource
from agent_pipeline.defs.trading.assets import DAILY_PNL, FILLS, GATE_DECISIONS, ORDERS, POSITIONS
from agent_pipeline.defs.trading.ops import BROKER_CONSUMER
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.store import begin, has_table
from agent_pipeline.store.events import EVENTS, append_frame, events_frame
from agent_pipeline.trading import tables as trading_tables
from agent_pipeline.trading.execution import ExecutionLayer

TICK_JOB = "agent_tick"
PLAN_OP = "plan_tick"
RECORD_OP = "record_tick"
READ_TIMEOUT_S = 5.0


class TickSlot(dg.Config):
    agent: str
    index: int
    due_at: str


class TickRunConfig(dg.Config):
    """What the tick sensor launches: the period, the tick's number in it, and its due slots."""

    period_start: str
    tick: int = 0
    slots: list[TickSlot] = []


def slots_output(agent: str) -> str:
    return f"slots__{agent}"


def slot_op_name(agent: str) -> str:
    return f"run_{agent}__slot"


def stored_event_ids(conn, event_ids: list[str]) -> set[str]:
    """Which of ``event_ids`` agent_events already holds (none when the table does not exist yet)."""
    if not event_ids or not has_table(conn, "agent_events"):
        return set()
    marks = ", ".join("?" for _ in event_ids)
    return {r[0] for r in conn.execute(f"SELECT event_id FROM agent_events WHERE event_id IN ({marks})",
                                       event_ids).fetchall()}


def _plan_op(registry: Mapping[str, LoadedAgent]) -> dg.OpDefinition:
    outs = {slots_output(name): dg.DynamicOut(dict, is_required=False, description=f"the due slots of `{name}`")
            for name in registry}

    @dg.op(name=PLAN_OP, out=outs, retry_policy=dg.RetryPolicy(max_retries=3, delay=1.0),
           description="Fan the tick's due slots out per agent, leaving out the slots whose event is already "
                       "stored (a retried or re-launched tick never runs a stored slot again).")
    def plan_tick(context: dg.OpExecutionContext, config: TickRunConfig, store: StoreResource):
        period = datetime.fromisoformat(config.period_start)
        slots = [s for s in config.slots if s.agent in registry]
        unknown = sorted({s.agent for s in config.slots} - set(registry))
        if unknown:
            context.log.warning(f"slots of agents not in this code location are left out: {unknown}")
        keyed = [(s, slot_key(s.agent, period, s.index)) for s in slots]
        ids = [slot_event_id(k) for _, k in keyed]
        stored: set[str] = set()
        if ids and store.store().exists():
            with store.store().connect(read_only=True, timeout_s=READ_TIMEOUT_S) as conn:
                stored = stored_event_ids(conn, ids)
        for (slot, key), event_id in zip(keyed, ids, strict=True):
            if event_id in stored:
                continue
            yield dg.DynamicOutput({"agent": slot.agent, "index": slot.index, "due_at": slot.due_at, "key": key,
                                    "event_id": event_id, "period_start": config.period_start},
                                   output_name=slots_output(slot.agent), mapping_key=f"slot_{slot.index}")
        context.log.info(f"tick {config.tick} of period {config.period_start}: {len(slots)} slots, "
                         f"{len(stored)} already stored, {len(slots) - len(stored)} to run")

    return plan_tick


def _slot_op(loaded: LoadedAgent) -> dg.OpDefinition:
    name = loaded.name

    @agent_op(loaded, slot_op_name(name), "for one quota slot: measure latency, cost and reward; the event goes to "
              "record_tick (fails after handing it on if the agent failed).",
              ins={"slot": dg.In(dict, description="The slot: agent, index, due time, slot key and event id.")},
              out=dg.Out(dict, description="The slot's event, to be stored by record_tick."))
    def run_slot(context: dg.OpExecutionContext, slot: dict, market: MarketResource,
                 reward_config: RewardConfigResource):
        started = datetime.now(UTC)
        lag = (started - datetime.fromisoformat(slot["due_at"])).total_seconds()

        run = run_and_record(loaded, run_preparer(loaded, market, reward_config, context.run_id),
                             run_id=context.run_id)
        event = replace(run.event, event_id=slot["event_id"])
        metadata = {
            "agent": name, "slot_key": slot["key"], "event_id": event.event_id,
            "schedule_lag_seconds": dg.MetadataValue.float(lag), "latency_seconds": event.latency_seconds,
            "cost_usd": dg.MetadataValue.float(event.cost_usd) if event.cost_usd is not None else "unknown",
            "reward": dg.MetadataValue.float(event.reward) if event.reward is not None else "n/a (error)",
            **run_outcome(event, run.thread_running),
        }
        yield dg.Output({"event": event, "slot": slot, "started_at": started.isoformat(), "lag_seconds": lag},
                        metadata=metadata)
        if event.error:
            raise dg.Failure(description=f"agent {name} failed in slot {slot['key']}: {event.error}",
                             metadata=metadata)

    return run_slot


def _record_op(registry: Mapping[str, LoadedAgent], settings: Settings) -> dg.OpDefinition:
    inputs = {f"runs__{name}": dg.In(list[dict], description=f"the slot events of `{name}`") for name in registry}
    hashes = {name: loaded.spec.fingerprint() for name, loaded in registry.items()}

    @dg.op(name=RECORD_OP, ins=inputs, retry_policy=dg.RetryPolicy(max_retries=2, delay=1.0),
           out=dg.Out(dict, description="The tick's summary: events written and skipped, orders by outcome."),
           description="Write the tick in one store transaction on one connection: every slot's event (a slot "
                       "already stored is skipped) and the new events' trade proposals through the execution gate "
                       "to the paper broker, under one hold of the kill switch.")
    def record_tick(context: dg.OpExecutionContext, store: StoreResource, market: MarketResource,
                    kill_switch: KillSwitchResource, **runs):
        results = [r for name in registry for r in runs.get(f"runs__{name}", [])]
        events = [r["event"] for r in results]
        db = store.store()
        switch = kill_switch.switch()
        layer = ExecutionLayer(db, market.make(consumer=BROKER_CONSUMER), guardrails=settings.guardrails,
                               execution=settings.execution, kill_switch=switch,
                               allocation_period_sec=settings.allocation.period_minutes * 60.0)
        reports = []
        with switch.guard(), db.connect(timeout_s=store.lock_timeout_s) as conn:
            db.ensure(conn, EVENTS)
            db.ensure(conn, trading_tables.TRADING)
            with begin(conn):
                stored = stored_event_ids(conn, [e.event_id for e in events])
                new = [e for e in events if e.event_id not in stored]
                if new:
                    append_frame(db, events_frame(new), conn=conn)
                for event in new:
                    if event.error:
                        continue
                    loaded = registry[event.agent]  # identity from the registry, never from the output
                    reports.append(layer.execute(
                        {"agent": event.agent, "strategy": loaded.strategy, "event_id": event.event_id,
                         "output": event.output}, run_id=context.run_id, strategy_hash=hashes.get(event.agent),
                        agent=event.agent, strategy=loaded.strategy, conn=conn))
        summary = _summary(results, new, len(stored), reports)
        metadata = _metadata(summary, new)
        if new:
            yield dg.AssetMaterialization(asset_key=AGENT_EVENTS, description=f"{len(new)} events of the tick",
                                          metadata=metadata)
        if summary["proposals"]:
            yield dg.AssetMaterialization(asset_key=GATE_DECISIONS, description="the tick's gate decisions",
                                          metadata=metadata)
        if summary["approved"]:
            yield dg.AssetMaterialization(asset_key=ORDERS, description="the tick's orders", metadata=metadata)
        if summary["filled"]:  # each table the tick changed gets its own materialization (see the lineage)
            for key, what in ((FILLS, "fills"), (POSITIONS, "positions after the fills"),
                              (DAILY_PNL, "realised PnL after the fills")):
                yield dg.AssetMaterialization(asset_key=key, description=f"the tick's {what}", metadata=metadata)
        yield dg.Output(summary, metadata=metadata)

    return record_tick


def _summary(results: list[dict], new: list, already: int, reports: list) -> dict:
    lags = sorted(r["lag_seconds"] for r in results)
    return {
        "slots": len(results), "events_written": len(new), "already_stored": already,
        "failed_runs": sum(1 for e in new if e.error), "transactions": 1,
        "proposals": sum(r.proposals for r in reports), "approved": sum(r.approved for r in reports),
        "denied": sum(r.denied for r in reports), "filled": sum(r.filled for r in reports),
        "realized_pnl_usd": sum(r.realized_pnl_usd for r in reports),
        "max_schedule_lag_seconds": lags[-1] if lags else None,
    }


def _metadata(summary: dict, new: list) -> dict:
    metadata = {k: v for k, v in summary.items() if v is not None}
    if new:
        frame = pd.DataFrame({"agent": [e.agent for e in new], "failed": [e.error is not None for e in new],
                              "reward": [e.reward for e in new]})
        table = frame.groupby("agent").agg(runs=("failed", "size"), failed=("failed", "sum"),
                                           mean_reward=("reward", "mean"))
        rows = "\n".join(f"| {agent} | {r.runs} | {r.failed} | {r.mean_reward:.4g} |"
                          for agent, r in table.iterrows())
        metadata["by_agent"] = dg.MetadataValue.md("| agent | runs | failed | mean reward |\n|---|---|---|---|\n"
                                                   + rows)
    return metadata


def agent_tick_job(registry: Mapping[str, LoadedAgent], settings: Settings) -> dg.JobDefinition:
    """The tick job of ``registry``'s agents, its concurrency from ``settings.tick``."""
    tick: TickConfig = settings.tick
    plan = _plan_op(registry)
    slot_ops = {name: _slot_op(loaded) for name, loaded in registry.items()}
    record = _record_op(registry, settings)
    limits = [{"key": "agent", "value": name, "limit": tick.concurrency_of(name)} for name in sorted(registry)]

    @dg.job(
        name=TICK_JOB,
        description="One quota tick: every agent slot due in the tick window, one op per slot, overlapping on "
                    "threads of one process (per-agent limits from [tick]); the tick's events and orders are "
                    "written in one store transaction. Launched by agent_tick_sensor.",
        executor_def=threaded_executor(tick.max_concurrent, limits),
        resource_defs=agent_job_resources(settings),
        tags={"domain": "agents"},
    )
    def agent_tick():
        fanned = plan()
        if len(registry) == 1:
            fanned = (fanned,)
        collected = {f"runs__{name}": out.map(slot_ops[name]).collect()
                     for name, out in zip(registry, fanned, strict=True)}
        record(**collected)

    return agent_tick
