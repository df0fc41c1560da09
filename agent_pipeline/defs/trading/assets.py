"""Trading tables as assets, and ``trading_safety``: the kill switch, denials and approvals in the UI."""

import dagster as dg

from agent_pipeline.defs.resources import KillSwitchResource, StoreResource
from agent_pipeline.trading.report import SafetySnapshot, snapshot

AGENT_EVENTS = dg.AssetKey("agent_events")
GATE_DECISIONS = dg.AssetKey("gate_decisions")
ORDERS = dg.AssetKey("orders")
FILLS = dg.AssetKey("fills")
POSITIONS = dg.AssetKey("positions")
DAILY_PNL = dg.AssetKey("daily_pnl")
TRADING_SAFETY = dg.AssetKey("trading_safety")

GROUP = "trading"

TABLE_SPECS = [
    dg.AssetSpec(GATE_DECISIONS, deps=[AGENT_EVENTS], group_name=GROUP, kinds={"duckdb"},
                 description="Every execution-gate decision, approved or denied, with its stable reason code and "
                             "the inputs the gate saw (DuckDB table gate_decisions). Written by the execute_* ops."),
    dg.AssetSpec(ORDERS, deps=[GATE_DECISIONS], group_name=GROUP, kinds={"duckdb"},
                 description="Orders the gate approved and sent to the paper broker (table orders; order_key is "
                             "unique, so op and run retries cannot place an order twice)."),
    dg.AssetSpec(FILLS, deps=[ORDERS], group_name=GROUP, kinds={"duckdb"},
                 description="Paper fills against the market source with slippage and fees (table fills)."),
    dg.AssetSpec(POSITIONS, deps=[FILLS], group_name=GROUP, kinds={"duckdb"},
                 description="Net position per strategy and symbol with average-cost realised PnL (table positions)."),
    dg.AssetSpec(DAILY_PNL, deps=[FILLS], group_name=GROUP, kinds={"duckdb"},
                 description="Realised PnL and loss per UTC trading date (table daily_pnl): the daily loss budget "
                             "the gate enforces, surviving restarts."),
]


def snapshot_metadata(snap: SafetySnapshot, kill_switch_file) -> dict:
    md = snap.markdown()
    metadata = {
        "kill_switch_state": snap.kill_switch.state.value,
        "kill_switch_reason": snap.kill_switch.reason or "",
        "kill_switch": dg.MetadataValue.md(md["kill_switch"]),
        "kill_switch_audit": dg.MetadataValue.md(md["audit"]),
        "decisions_24h": snap.decisions,
        "approved_24h": snap.approved,
        "denials_24h": sum(snap.denials_by_reason.values()),
        "denials_by_reason": dg.MetadataValue.md(md["denials_by_reason"]),
        "recent_denials": dg.MetadataValue.md(md["recent_denials"]),
        "approvals": dg.MetadataValue.md(md["approvals"]),
        "orders_today": snap.orders_today,
        "realized_pnl_today_usd": dg.MetadataValue.float(snap.realized_pnl_today_usd),
        "daily_loss_today_usd": dg.MetadataValue.float(snap.loss_today_usd),
        "kill_switch_file": dg.MetadataValue.path(str(kill_switch_file)),
    }
    if snap.store_error:
        metadata["store_error"] = snap.store_error
    return metadata


@dg.asset(
    key=TRADING_SAFETY,
    deps=[GATE_DECISIONS, DAILY_PNL],
    group_name=GROUP,
    kinds={"duckdb"},
    description="Trading safety at a glance: the persisted kill switch (state, who tripped it and why, audit), "
                "denials of the last 24 h by reason code, the most recent denials, two-person approvals, and "
                "today's orders and realised PnL. Also materialized by the kill-switch job and the circuit breaker.",
)
def trading_safety(context: dg.AssetExecutionContext, store: StoreResource,
                   kill_switch: KillSwitchResource) -> dg.MaterializeResult:
    kill = kill_switch.switch()
    snap = snapshot(store.store(), kill)
    context.log.info(f"kill switch {snap.kill_switch.state.value}: {snap.kill_switch.reason}")
    return dg.MaterializeResult(metadata=snapshot_metadata(snap, kill.path))
