"""One Dagster op per registered agent: run it instrumented, store its event, report agent_events."""


from datetime import UTC, datetime

import dagster as dg

from agent_pipeline.agents import AgentContext, LoadedAgent
from agent_pipeline.agents.instrumentation import run_and_record
from agent_pipeline.defs.resources import MarketResource, RewardConfigResource, StoreResource
from agent_pipeline.store import append_event

AGENT_EVENTS = dg.AssetKey("agent_events")


def agent_op_name(agent_name: str) -> str:
    return f"run_{agent_name}"


def run_preparer(loaded: LoadedAgent, market: MarketResource, reward_config: RewardConfigResource, run_id: str):
    """What ``run_and_record`` calls to build one run's context and reward config (it copies the params)."""
    def prepare():
        ctx = AgentContext(now=datetime.now(UTC), market=market.make(consumer=loaded.name),
                           params=loaded.spec.params, run_id=run_id)
        return ctx, reward_config.config()

    return prepare


def agent_op(loaded: LoadedAgent, op_name: str, purpose: str, **op_args):
    """The ``dg.op`` decorator of an op that runs ``loaded`` once: the description names the agent, its kind and
    strategy; the ``agent`` and ``kind`` tags are what the tick's per-agent concurrency limits and run filters key on."""
    return dg.op(name=op_name,
                 description=f"Run agent `{loaded.name}` ({loaded.kind}, strategy `{loaded.strategy}`) {purpose}",
                 tags={"agent": loaded.name, "kind": loaded.kind}, **op_args)


def run_outcome(event, thread_running: bool) -> dict:
    """The metadata every agent-run op ends with: how many outputs, the error if any, a thread left running."""
    outcome = {"outputs": len(event.output or [])}
    if event.error:
        outcome["error"] = event.error
    if thread_running:
        outcome["agent_thread_still_running"] = True
    return outcome


def build_agent_op(loaded: LoadedAgent) -> dg.OpDefinition:
    """The op for one agent. Its event is written even when the agent fails; then the op fails too."""
    name = loaded.name

    @agent_op(loaded, agent_op_name(name), "once against the market, measure latency, cost and reward, and append "
              "the event to agent_events.",
              out=dg.Out(dict, description="The stored event: ids, reward and the agent's output."))
    def run_agent(context: dg.OpExecutionContext, store: StoreResource, market: MarketResource,
                  reward_config: RewardConfigResource):
        prepare = run_preparer(loaded, market, reward_config, context.run_id)

        def record(event):
            append_event(store.store(), event, timeout_s=store.lock_timeout_s)

        # the event is stored before an interrupt or SystemExit propagates (a failed run is raised below)
        run = run_and_record(loaded, prepare, run_id=context.run_id, record=record)
        event = run.event
        # numbers labelled with the agent, so the asset's plots draw one line per agent, not all agents threaded
        metadata = {
            "agent": name, "event_id": event.event_id,
            f"latency_seconds ({name})": dg.MetadataValue.float(round(event.latency_seconds, 4)),
            f"cost_usd ({name})": (dg.MetadataValue.float(round(event.cost_usd, 6)) if event.cost_usd is not None
                                   else "unknown"),
            f"reward ({name})": (dg.MetadataValue.float(round(event.reward, 4)) if event.reward is not None
                                 else "n/a (error)"),
            **run_outcome(event, run.thread_running),
        }
        yield dg.AssetMaterialization(asset_key=AGENT_EVENTS, description=f"event of {name}", metadata=metadata)
        if event.error:
            raise dg.Failure(description=f"agent {name} failed: {event.error}", metadata=metadata)
        yield dg.Output({"event_id": event.event_id, "agent": name, "strategy": loaded.strategy,
                         "kind": loaded.kind, "reward": event.reward, "output": event.output,
                         "started_at": event.started_at.isoformat()}, metadata=metadata)

    return run_agent
