"""The trading tables in DuckDB and the gate state they back. All timestamps are UTC (TIMESTAMPTZ).

Tables (component ``trading``; read them freely, write them only through this module):

``gate_decisions``  every decision, approved or denied: decision_id, decided_at, run_id, event_id, agent,
                    strategy, order_key, symbol, side, notional_usd, approved, reason_code (``reasons.Reason``),
                    reason (human text with the numbers), kill_switch_state (state the gate saw), inputs (JSON: the
                    signal as the gate saw it; non-finite numbers stored as strings such as "nan"). For orders
                    from the execution layer, ``inputs`` keeps what the agent claimed (``claimed_spread_bps``,
                    ``claimed_size``, ..., ``proposed_notional_usd``, its limit ``price``) beside what the market
                    showed (the measured ``spread_bps``, ``slippage_bps``, ``data_age_sec``, ... and ``market``:
                    per leg venue, ts, bid, ask, sizes, mid, spread, touch, fee, expected fill price and
                    slippage, measured_at and fetched_at), so a reviewer sees why an order passed or not.
``orders``          one row per accepted order: order_id, order_key (unique: duplicate protection across op and
                    run retries), created_at, run_id, event_id, agent, strategy, symbol, side, venue, sell_venue
                    (paired arbitrage), size, limit_price, notional_usd, capital_usd, status ('filled' |
                    'rejected' by the broker), reject_reason, paper, decision_id.
``fills``           fill_id, order_id, leg (0, 1 for the second leg of a pair), filled_at, strategy, symbol, venue,
                    side, size, price (after slippage), fee_usd, slippage_bps, realized_pnl_usd (incl. the fee).
``positions``       strategy, symbol, qty (signed), avg_price, realized_pnl_usd, fees_usd, updated_at
                    (average-cost accounting; one row per strategy and symbol).
``daily_pnl``       trading_date (UTC date), realized_pnl_usd (net), loss_usd (sum of losing fills: what
                    ``max_daily_loss_usd`` limits), fills, updated_at.
``strategy_approvals``  token, agent, strategy_hash, approver (the name as claimed), issued_at, expires_at,
                    recorded_at, identity (the canonical name the two-person rule counts), os_user (the OS account
                    that signed, from the process's user id).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from agent_pipeline.numbers import finite_number
from agent_pipeline.store import Store, has_table
from agent_pipeline.trading.breaker import BreakerReading, read_breaker
from agent_pipeline.trading.config import GuardrailConfig
from agent_pipeline.trading.state import position_after

COMPONENT = "trading"

MIGRATIONS: list[str] = [
    """
    CREATE TABLE gate_decisions (
        decision_id VARCHAR PRIMARY KEY,
        decided_at TIMESTAMPTZ NOT NULL,
        run_id VARCHAR,
        event_id VARCHAR,
        agent VARCHAR,
        strategy VARCHAR,
        order_key VARCHAR,
        symbol VARCHAR,
        side VARCHAR,
        notional_usd DOUBLE,
        approved BOOLEAN NOT NULL,
        reason_code VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        kill_switch_state VARCHAR,
        inputs JSON
    );
    CREATE INDEX gate_decisions_decided_at ON gate_decisions (decided_at);
    CREATE TABLE orders (
        order_id VARCHAR PRIMARY KEY,
        order_key VARCHAR NOT NULL UNIQUE,
        created_at TIMESTAMPTZ NOT NULL,
        run_id VARCHAR,
        event_id VARCHAR,
        agent VARCHAR,
        strategy VARCHAR,
        symbol VARCHAR,
        side VARCHAR,
        venue VARCHAR,
        sell_venue VARCHAR,
        size DOUBLE,
        limit_price DOUBLE,
        notional_usd DOUBLE,
        capital_usd DOUBLE,
        status VARCHAR NOT NULL,
        reject_reason VARCHAR,
        paper BOOLEAN,
        decision_id VARCHAR
    );
    CREATE TABLE fills (
        fill_id VARCHAR PRIMARY KEY,
        order_id VARCHAR NOT NULL,
        leg INTEGER NOT NULL,
        filled_at TIMESTAMPTZ NOT NULL,
        strategy VARCHAR,
        symbol VARCHAR,
        venue VARCHAR,
        side VARCHAR,
        size DOUBLE,
        price DOUBLE,
        fee_usd DOUBLE,
        slippage_bps DOUBLE,
        realized_pnl_usd DOUBLE
    );
    CREATE TABLE positions (
        strategy VARCHAR NOT NULL,
        symbol VARCHAR NOT NULL,
        qty DOUBLE NOT NULL,
        avg_price DOUBLE NOT NULL,
        realized_pnl_usd DOUBLE NOT NULL,
        fees_usd DOUBLE NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE daily_pnl (
        trading_date DATE NOT NULL,
        realized_pnl_usd DOUBLE NOT NULL,
        loss_usd DOUBLE NOT NULL,
        fills INTEGER NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE strategy_approvals (
        token VARCHAR PRIMARY KEY,
        agent VARCHAR,
        strategy_hash VARCHAR NOT NULL,
        approver VARCHAR NOT NULL,
        issued_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    """,
    # who signed, beside the claimed name: the canonical identity the two-person rule counts, and the OS account
    """
    ALTER TABLE strategy_approvals ADD COLUMN identity VARCHAR;
    ALTER TABLE strategy_approvals ADD COLUMN os_user VARCHAR;
    """,
]

TABLES = ("gate_decisions", "orders", "fills", "positions", "daily_pnl", "strategy_approvals")


def ensure_schema(store: Store, conn) -> None:
    store.ensure_schema(conn, COMPONENT, MIGRATIONS)


@contextmanager
def transaction(store: Store, timeout_s: float | None = None) -> Iterator[Any]:
    """One locked connection with the trading schema in place and a transaction around the block.

    (Migrations run their own transactions, so they go first, outside ours.)
    """
    with store.transaction(timeout_s=timeout_s, schema=(COMPONENT, MIGRATIONS)) as conn:
        yield conn


def json_safe(value: Any, depth: int = 0) -> Any:
    """A JSON-storable copy: non-finite floats and odd objects become strings, so inputs are kept as seen."""
    if depth > 6:
        return repr(value)[:200]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2 ** 63 else repr(value)[:40] + "..."
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    as_record = getattr(value, "as_record", None)  # measured market facts
    if callable(as_record) and not isinstance(value, type):
        return json_safe(as_record(), depth + 1)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, depth + 1) for v in value]
    try:
        number = float(value)  # numpy scalars
        if type(value).__module__ == "numpy":
            return number if math.isfinite(number) else repr(number)
    except (TypeError, ValueError, OverflowError):
        pass
    return repr(value)[:200]


def new_id() -> str:
    return uuid.uuid4().hex




class StoreGateState:
    """The gate's memory in DuckDB. ``bind(conn)`` makes every question join the caller's transaction."""

    def __init__(self, store: Store, cfg: GuardrailConfig | None = None, *, timeout_s: float | None = None):
        self.store = store
        self.cfg = cfg or GuardrailConfig()
        self.timeout_s = timeout_s
        self._conn = None
        self._breaker: BreakerReading | None = None

    @contextmanager
    def bind(self, conn) -> Iterator[StoreGateState]:
        previous, self._conn, self._breaker = self._conn, conn, None
        try:
            yield self
        finally:
            self._conn, self._breaker = previous, None

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        if self._conn is not None:
            yield self._conn
            return
        with transaction(self.store, self.timeout_s) as conn:
            yield conn

    def daily_loss_usd(self, day: date) -> float:
        with self._connection() as conn:
            row = conn.execute("SELECT sum(loss_usd) FROM daily_pnl WHERE trading_date = ?", [day]).fetchone()
        return float(row[0] or 0.0)

    def daily_pnl_usd(self, day: date) -> float:
        with self._connection() as conn:
            row = conn.execute("SELECT sum(realized_pnl_usd) FROM daily_pnl WHERE trading_date = ?", [day]).fetchone()
        return float(row[0] or 0.0)

    def add_pnl(self, day: date, pnl_usd: float) -> None:
        now = datetime.now(UTC)
        loss = max(0.0, -pnl_usd)
        with self._connection() as conn:
            changed = conn.execute(
                "UPDATE daily_pnl SET realized_pnl_usd = realized_pnl_usd + ?, loss_usd = loss_usd + ?, "
                "fills = fills + 1, updated_at = ? WHERE trading_date = ?", [pnl_usd, loss, now, day]).fetchone()[0]
            if not changed:
                conn.execute("INSERT INTO daily_pnl VALUES (?, ?, ?, 1, ?)", [day, pnl_usd, loss, now])

    def order_key_seen(self, key: str) -> bool:
        with self._connection() as conn:
            return conn.execute("SELECT count(*) FROM orders WHERE order_key = ?", [key]).fetchone()[0] > 0

    def orders_since(self, since: datetime, strategy: str | None = None) -> tuple[int, float]:
        sql = "SELECT count(*), coalesce(sum(notional_usd), 0) FROM orders WHERE created_at >= ?"
        params: list[Any] = [since]
        if strategy is not None:
            sql += " AND strategy = ?"
            params.append(strategy)
        with self._connection() as conn:
            count, notional = conn.execute(sql, params).fetchone()
        return int(count), float(notional)

    def gross_exposure_usd(self, strategy: str) -> float:
        with self._connection() as conn:
            row = conn.execute("SELECT sum(abs(qty) * avg_price) FROM positions WHERE strategy = ?",
                               [strategy]).fetchone()
        return float(row[0] or 0.0)

    def position_qty(self, strategy: str, symbol: str) -> float:
        return self.position(strategy, symbol)[0]

    def position(self, strategy: str, symbol: str) -> tuple[float, float]:
        """(qty, average price) of one strategy's position in one symbol; (0, 0) when flat."""
        with self._connection() as conn:
            row = conn.execute("SELECT qty, avg_price FROM positions WHERE strategy = ? AND symbol = ?",
                               [strategy, symbol]).fetchone()
        return (float(row[0]), float(row[1])) if row else (0.0, 0.0)

    def orders_in_run(self, run: str) -> int:
        """Orders accepted for one agent run (its event id), including those of an earlier attempt of the op."""
        with self._connection() as conn:
            return int(conn.execute("SELECT count(*) FROM orders WHERE event_id = ?", [run]).fetchone()[0])

    def breaker_breach(self, now: datetime) -> str | None:
        if self._breaker is None or self._conn is None:
            with self._connection() as conn:
                self._breaker = read_breaker(conn, self.cfg, now)
        return self._breaker.reason if self._breaker.breached else None

    def note_order(self, at: datetime, strategy: str, notional_usd: float, order_key: str | None,
                   run: str | None = None) -> None:
        """Nothing to do: the execution layer's row in ``orders`` (same transaction) is the record."""


def record_decision(conn, decision, *, run_id: str | None, event_id: str | None, agent: str | None,
                    strategy: str | None) -> str:
    inputs = decision.inputs if isinstance(decision.inputs, Mapping) else {}

    def text(key: str) -> str | None:
        value = inputs.get(key)
        return value if isinstance(value, str) else None

    notional = finite_number(inputs.get("notional_usd"))
    stored = dict(inputs)
    if isinstance(stored.get("approvals"), (list, tuple)):  # tokens stay in strategy_approvals
        stored["approvals"] = f"{len(stored['approvals'])} token(s)"
    decision_id = new_id()
    conn.execute(
        "INSERT INTO gate_decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [decision_id, decision.decided_at, run_id, event_id, agent, strategy, text("order_key"), text("symbol"),
         text("side"), notional, decision.ok, decision.code.value, decision.reason, decision.kill_switch_state,
         json.dumps(json_safe(stored), allow_nan=False)])
    return decision_id


def apply_fill(conn, *, strategy: str, symbol: str, side: str, size: float, price: float, fee_usd: float,
               at: datetime) -> float:
    """Update the position with average-cost accounting; returns the realised PnL of this fill (fee included)."""
    row = conn.execute("SELECT qty, avg_price, realized_pnl_usd, fees_usd FROM positions "
                       "WHERE strategy = ? AND symbol = ?", [strategy, symbol]).fetchone()
    qty, avg, realized, fees = row if row else (0.0, 0.0, 0.0, 0.0)
    new_qty, new_avg, gross = position_after(qty, avg, side, size, price)
    pnl = gross - fee_usd
    if row:
        conn.execute("UPDATE positions SET qty = ?, avg_price = ?, realized_pnl_usd = ?, fees_usd = ?, "
                     "updated_at = ? WHERE strategy = ? AND symbol = ?",
                     [new_qty, new_avg, realized + pnl, fees + fee_usd, at, strategy, symbol])
    else:
        conn.execute("INSERT INTO positions VALUES (?, ?, ?, ?, ?, ?, ?)",
                     [strategy, symbol, new_qty, new_avg, pnl, fee_usd, at])
    return pnl


def allocator_capital(conn, agent: str) -> tuple[float | None, bool]:
    """(capital, decided): the agent's capital in the latest ``allocator_quotas`` period, if the allocator ran."""
    if not has_table(conn, "allocator_quotas"):
        return None, False
    row = conn.execute(
        "SELECT sum(capital_usd), count(*) FROM allocator_quotas WHERE agent = ? AND period_start = "
        "(SELECT max(period_start) FROM allocator_quotas)", [agent]).fetchone()
    if not row or not row[1]:
        return None, False
    return (None if row[0] is None else float(row[0])), True


def approval_tokens(conn, agent: str, strategy_hash: str | None) -> list[str]:
    rows = conn.execute("SELECT token FROM strategy_approvals WHERE agent = ? OR strategy_hash = ? "
                        "ORDER BY recorded_at", [agent, strategy_hash or ""]).fetchall()
    return [r[0] for r in rows]


def store_approval(store: Store, approval) -> None:
    """Record one issued approval (``approvals.Approval``); the gate re-verifies the token, not these columns."""
    with transaction(store) as conn:
        conn.execute("INSERT OR IGNORE INTO strategy_approvals (token, agent, strategy_hash, approver, issued_at, "
                     "expires_at, identity, os_user) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     [approval.token, approval.agent, approval.strategy_hash, approval.approver,
                      datetime.fromtimestamp(approval.issued_at, UTC),
                      datetime.fromtimestamp(approval.expires_at, UTC),
                      getattr(approval, "identity", "") or None, getattr(approval, "os_user", "") or None])
