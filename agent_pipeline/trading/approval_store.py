"""Where issued approvals are kept (``strategy_approvals``) and how the gate finds the ones for a strategy.

The stored columns are for people (who approved what, until when); the gate re-verifies every token itself
(``trading.approvals``), so a row edited in the table approves nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from agent_pipeline.store import Store, insert_sql
from agent_pipeline.trading.tables import TRADING

_INSERT = insert_sql("strategy_approvals", ("token", "agent", "strategy_hash", "approver", "issued_at",
                                            "expires_at", "identity", "os_user")) + " ON CONFLICT DO NOTHING"


def store_approval(store: Store, approval) -> None:
    """Record one issued approval (``approvals.Approval``); storing the same token twice keeps one row."""
    with store.transaction(schema=TRADING) as conn:
        conn.execute(_INSERT, [approval.token, approval.agent, approval.strategy_hash, approval.approver,
                               datetime.fromtimestamp(approval.issued_at, UTC),
                               datetime.fromtimestamp(approval.expires_at, UTC),
                               getattr(approval, "identity", "") or None, getattr(approval, "os_user", "") or None])


def approval_tokens(conn, agent: str, strategy_hash: str | None) -> list[str]:
    """Tokens recorded for the agent or its strategy hash, oldest first (the gate decides which count)."""
    rows = conn.execute("SELECT token FROM strategy_approvals WHERE agent = ? OR strategy_hash = ? "
                        "ORDER BY recorded_at", [agent, strategy_hash or ""]).fetchall()
    return [r[0] for r in rows]
