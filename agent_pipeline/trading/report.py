"""A read-only snapshot of trading safety for people: kill switch, recent denials, approvals, today's PnL.

Used by the Dagster asset ``trading_safety``, the kill-switch job and the CLI. The kill switch comes from its
state file (always readable); the tables come from a read-only, bounded store connection, and a busy or
missing store gives a snapshot without them (``store_error`` says why) instead of an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent_pipeline.store import Store, StoreBusy, has_table
from agent_pipeline.trading.approvals import decode
from agent_pipeline.trading.kill_switch import KillSwitch, KillSwitchStatus
from agent_pipeline.trading.state import trading_date


@dataclass
class SafetySnapshot:
    at: datetime
    kill_switch: KillSwitchStatus
    audit: list[dict[str, Any]]
    denials_by_reason: dict[str, int] = field(default_factory=dict)
    decisions: int = 0
    approved: int = 0
    recent_denials: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    orders_today: int = 0
    realized_pnl_today_usd: float = 0.0
    loss_today_usd: float = 0.0
    store_error: str | None = None

    def kill_switch_line(self) -> str:
        """The switch's state, why, by whom and when, in one line of markdown."""
        ks = self.kill_switch
        return (f"**{ks.state.value}**" + (f": {ks.reason}" if ks.reason else "")
                + (f" (by {ks.by} at {ks.at})" if ks.by else ""))


def snapshot(store: Store, kill_switch: KillSwitch, *, now: datetime | None = None, timeout_s: float = 2.0,
             audit_rows: int = 10, recent: int = 10) -> SafetySnapshot:
    now = now or datetime.now(UTC)
    snap = SafetySnapshot(now, kill_switch.status(), kill_switch.audit(audit_rows))
    try:
        with store.connect(read_only=True, timeout_s=timeout_s) as conn:
            if has_table(conn, "gate_decisions"):
                since = now - timedelta(hours=24)
                for code, approved, n in conn.execute(
                        "SELECT reason_code, approved, count(*) FROM gate_decisions WHERE decided_at >= ? "
                        "GROUP BY reason_code, approved", [since]).fetchall():
                    snap.decisions += n
                    if approved:
                        snap.approved += n
                    else:
                        snap.denials_by_reason[code] = snap.denials_by_reason.get(code, 0) + n
                rows = conn.execute("SELECT decided_at, agent, reason_code, reason FROM gate_decisions "
                                    "WHERE NOT approved ORDER BY decided_at DESC LIMIT ?", [recent]).fetchall()
                snap.recent_denials = [{"decided_at": r[0].isoformat(), "agent": r[1], "reason_code": r[2],
                                        "reason": r[3]} for r in rows]
            if has_table(conn, "strategy_approvals"):
                for token, agent, approver, expires in conn.execute(
                        "SELECT token, agent, approver, expires_at FROM strategy_approvals "
                        "ORDER BY recorded_at DESC LIMIT 20").fetchall():
                    try:
                        bound = str(decode(token).get("strategy_hash", ""))
                    except Exception:
                        bound = "unreadable"
                    snap.approvals.append({"agent": agent, "approver": approver, "strategy_hash": bound,
                                           "expires_at": expires.isoformat(), "expired": expires <= now})
            if has_table(conn, "orders"):
                day = trading_date(now)
                start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                snap.orders_today = conn.execute("SELECT count(*) FROM orders WHERE created_at >= ?",
                                                 [start]).fetchone()[0]
                pnl, loss = conn.execute("SELECT coalesce(sum(realized_pnl_usd), 0), coalesce(sum(loss_usd), 0) "
                                         "FROM daily_pnl WHERE trading_date = ?", [day]).fetchone()
                snap.realized_pnl_today_usd, snap.loss_today_usd = float(pnl), float(loss)
    except (StoreBusy, FileNotFoundError) as exc:
        snap.store_error = f"{type(exc).__name__}: {exc}"
    return snap
