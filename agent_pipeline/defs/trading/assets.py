"""Trading tables as assets, and ``trading_safety``: the kill switch, denials and approvals in the UI."""

import dagster as dg
import pandas as pd

from agent_pipeline.defs.resources import KillSwitchResource, StoreResource
from agent_pipeline.defs.table_metadata import frame_table, none_yet, table_metadata
from agent_pipeline.store import StoreBusy
from agent_pipeline.trading.report import SafetySnapshot, snapshot

AGENT_EVENTS = dg.AssetKey("agent_events")
ALLOCATOR_QUOTAS = dg.AssetKey("allocator_quotas")  # the gate sizes orders with the capital in force
GATE_DECISIONS = dg.AssetKey("gate_decisions")
ORDERS = dg.AssetKey("orders")
FILLS = dg.AssetKey("fills")
POSITIONS = dg.AssetKey("positions")
DAILY_PNL = dg.AssetKey("daily_pnl")
TRADING_SAFETY = dg.AssetKey("trading_safety")

GROUP = "trading"
OWNERS = ["team:trading"]
TAGS = {"domain": "trading"}
TABLE_KEYS = {"gate_decisions": GATE_DECISIONS, "orders": ORDERS, "fills": FILLS, "positions": POSITIONS,
              "daily_pnl": DAILY_PNL}
WRITTEN_BY = ("Materialized by the execute_* step of every agent run that changes it; trading_safety records its "
              "row count and columns every 5 minutes.")

TABLE_SPECS = [
    dg.AssetSpec(GATE_DECISIONS, deps=[AGENT_EVENTS, ALLOCATOR_QUOTAS], group_name=GROUP, kinds={"duckdb"}, owners=OWNERS, tags=TAGS,
                 description="Every execution-gate decision, approved or denied, with its stable reason code and "
                             "the inputs the gate saw (DuckDB table gate_decisions); orders are sized by the capital "
                             "allocator_quotas has in force. " + WRITTEN_BY),
    dg.AssetSpec(ORDERS, deps=[GATE_DECISIONS], group_name=GROUP, kinds={"duckdb"}, owners=OWNERS, tags=TAGS,
                 description="Orders the gate approved and sent to the paper broker (table orders; order_key is "
                             "unique, so op and run retries cannot place an order twice). " + WRITTEN_BY),
    dg.AssetSpec(FILLS, deps=[ORDERS], group_name=GROUP, kinds={"duckdb"}, owners=OWNERS, tags=TAGS,
                 description="Paper fills against the market source with slippage and fees (table fills). " + WRITTEN_BY),
    dg.AssetSpec(POSITIONS, deps=[FILLS], group_name=GROUP, kinds={"duckdb"}, owners=OWNERS, tags=TAGS,
                 description="Net position per strategy and symbol with average-cost realised PnL (table positions). "
                             + WRITTEN_BY),
    dg.AssetSpec(DAILY_PNL, deps=[FILLS], group_name=GROUP, kinds={"duckdb"}, owners=OWNERS, tags=TAGS,
                 description="Realised PnL and loss per UTC trading date (table daily_pnl): the daily loss budget "
                             "the gate enforces, surviving restarts. " + WRITTEN_BY),
]


def _table(rows: list[dict], columns: list[str], empty: str) -> dg.MetadataValue:
    return frame_table(pd.DataFrame(rows, columns=columns)) if rows else none_yet(empty)


def snapshot_metadata(snap: SafetySnapshot, kill_switch_file) -> dict:
    audit = [{"at": str(r.get("at", "")), "action": str(r.get("action", "")),
              "change": f"{r.get('from_state', '')} -> {r.get('to_state', '')}", "by": str(r.get("by", "")),
              "reason": str(r.get("reason", r.get("raw", "")))[:160]} for r in reversed(snap.audit)]
    denials = [{"reason_code": code, "denials_24h": n}
               for code, n in sorted(snap.denials_by_reason.items(), key=lambda kv: -kv[1])]
    approvals = [{"agent": a["agent"], "approver": a["approver"], "strategy_hash": a["strategy_hash"][:12],
                  "expires_at": a["expires_at"]} for a in snap.approvals]
    recent = [{**d, "reason": str(d["reason"])[:160]} for d in snap.recent_denials]
    metadata = {
        "kill_switch_state": snap.kill_switch.state.value,
        "kill_switch_reason": snap.kill_switch.reason or "",
        "kill_switch": dg.MetadataValue.md(snap.kill_switch_line()),
        "kill_switch_audit": _table(audit, ["at", "action", "change", "by", "reason"],
                                    "no kill-switch change audited yet"),
        "decisions_24h": snap.decisions,
        "approved_24h": snap.approved,
        "denials_24h": sum(snap.denials_by_reason.values()),
        "denials_by_reason": _table(denials, ["reason_code", "denials_24h"], "no denial in the last 24 h"),
        "recent_denials": _table(recent, ["decided_at", "agent", "reason_code", "reason"], "no denial yet"),
        "approvals": _table(approvals, ["agent", "approver", "strategy_hash", "expires_at"],
                            "no approval recorded (the stock built-in agents need none)"),
        "orders_today": snap.orders_today,
        "realized_pnl_today_usd": dg.MetadataValue.float(round(snap.realized_pnl_today_usd, 2)),
        "daily_loss_today_usd": dg.MetadataValue.float(round(snap.loss_today_usd, 2)),
        "kill_switch_file": dg.MetadataValue.path(str(kill_switch_file)),
    }
    if snap.store_error:
        metadata["store_error"] = snap.store_error
    return metadata


def observe_tables(context: dg.AssetExecutionContext, store: StoreResource, timeout_s: float = 2.0) -> None:
    """Row count and columns of each trading table, as observations of its asset (a busy store skips them)."""
    db = store.store()
    if not db.exists():
        return
    try:
        with db.connect(read_only=True, timeout_s=timeout_s) as conn:
            observed = {name: table_metadata(conn, name) for name in TABLE_KEYS}
    except StoreBusy as exc:
        context.log.info(f"trading tables not observed this time: {exc}")
        return
    for name, meta in observed.items():
        context.log_event(dg.AssetObservation(asset_key=TABLE_KEYS[name], metadata=meta))


@dg.asset(
    key=TRADING_SAFETY,
    deps=[GATE_DECISIONS, DAILY_PNL],
    group_name=GROUP,
    kinds={"duckdb"},
    owners=OWNERS,
    tags=TAGS,
    description="Trading safety at a glance: the persisted kill switch (state, who tripped it and why, audit), "
                "denials of the last 24 h by reason code, the most recent denials, two-person approvals, and "
                "today's orders and realised PnL. Also materialized by the kill-switch job and the circuit breaker.",
)
def trading_safety(context: dg.AssetExecutionContext, store: StoreResource,
                   kill_switch: KillSwitchResource) -> dg.MaterializeResult:
    kill = kill_switch.switch()
    snap = snapshot(store.store(), kill)
    context.log.info(f"kill switch {snap.kill_switch.state.value}: {snap.kill_switch.reason}")
    observe_tables(context, store)
    return dg.MaterializeResult(metadata=snapshot_metadata(snap, kill.path))
