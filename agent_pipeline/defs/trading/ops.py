"""The execution op that follows each agent op: its output goes through the one execution layer."""

import dagster as dg

from agent_pipeline.agents import LoadedAgent
from agent_pipeline.defs.resources import KillSwitchResource, MarketResource, StoreResource
from agent_pipeline.defs.trading.assets import DAILY_PNL, FILLS, GATE_DECISIONS, ORDERS, POSITIONS
from agent_pipeline.trading.config import ExecutionConfig, GuardrailConfig
from agent_pipeline.trading.execution import DEFAULT_PERIOD_SEC, ExecutionLayer

BROKER_CONSUMER = "paper_broker"


def execution_op_name(agent_name: str) -> str:
    return f"execute_{agent_name}"


def build_execution_op(loaded: LoadedAgent, guardrails: GuardrailConfig, execution: ExecutionConfig, *,
                       allocation_period_sec: float = DEFAULT_PERIOD_SEC) -> dg.OpDefinition:
    """``execute_<agent>``: gate -> paper broker for the trade proposals in the agent run's output.

    The guardrails are part of the definition (from the settings loaded with the code location), not a resource:
    no run config can loosen a limit for one run."""
    name = loaded.name
    strategy_hash = loaded.spec.fingerprint()
    strategy = loaded.strategy  # the registry's, fixed at load: never what the run's output says

    @dg.op(
        name=execution_op_name(name),
        description=f"Send the trade proposals of agent `{name}` through the execution gate (kill switch, "
                    "pre-trade checks, approvals) to the paper broker; every decision lands in gate_decisions, "
                    "accepted orders in orders/fills/positions/daily_pnl. Retries cannot double-place: order "
                    "keys derive from the agent event.",
        tags={"agent": name, "domain": "trading"},
        ins={"agent_run": dg.In(dict, description="The agent op's output: event_id, agent, strategy, output.")},
        out=dg.Out(dict, description="Execution summary: proposals, approvals, denials by reason, fills, PnL."),
        retry_policy=dg.RetryPolicy(max_retries=2, delay=1.0),
    )
    def execute_agent(context: dg.OpExecutionContext, agent_run: dict, store: StoreResource,
                      market: MarketResource, kill_switch: KillSwitchResource):
        layer = ExecutionLayer(store.store(), market.make(consumer=BROKER_CONSUMER), guardrails=guardrails,
                               execution=execution, kill_switch=kill_switch.switch(),
                               allocation_period_sec=allocation_period_sec)
        report = layer.execute(agent_run, run_id=context.run_id, strategy_hash=strategy_hash, agent=name,
                               strategy=strategy)
        summary = report.summary()
        metadata = {
            "agent": name, "proposals": report.proposals, "approved": report.approved, "denied": report.denied,
            "filled": report.filled, "rejected_by_broker": report.rejected,
            "realized_pnl_usd": dg.MetadataValue.float(round(report.realized_pnl_usd, 2)),
            "kill_switch_state": report.kill_switch_state,
            "capital_usd": (dg.MetadataValue.float(round(report.capital_usd, 2)) if report.capital_usd is not None
                            else "n/a"),
            "capital_source": report.capital_source or "n/a",
            "by_reason": dg.MetadataValue.json(dict(report.by_reason)),
        }
        if report.denials:
            metadata["denials"] = dg.MetadataValue.md(
                "| order key | code | reason |\n|---|---|---|\n" + "\n".join(
                    f"| {k[:12]} | {c} | {r.replace('|', '/')[:160]} |" for k, c, r in report.denials[:20]))
        denied = {code: n for code, n in report.by_reason.items() if code != "OK"}
        if denied:  # the gate doing its job: recorded in gate_decisions with the reason, not a warning
            context.log.info(f"{name}: {sum(denied.values())} order(s) denied by the gate: "
                             + ", ".join(f"{code} x{n}" for code, n in sorted(denied.items())))
        # each table this step changed gets its own materialization, so the lineage shows when it changed
        after_fills = {"agent": name, "fills": report.filled, "realized_pnl_usd": metadata["realized_pnl_usd"]}
        for key, changed, what, meta in ((GATE_DECISIONS, report.proposals, "decisions", metadata),
                                         (ORDERS, report.approved, "orders", metadata),
                                         (FILLS, report.filled, "fills", after_fills),
                                         (POSITIONS, report.filled, "positions after the fills", after_fills),
                                         (DAILY_PNL, report.filled, "realised PnL after the fills", after_fills)):
            if changed:
                yield dg.AssetMaterialization(asset_key=key, description=f"{what} of {name}", metadata=meta)
        yield dg.Output(summary, metadata=metadata)

    return execute_agent
