"""The trading tables: their schema and every write to them. All timestamps are UTC (TIMESTAMPTZ).

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
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from agent_pipeline.numbers import finite_number
from agent_pipeline.safe_text import utf8_safe
from agent_pipeline.store import Schema, insert_sql
from agent_pipeline.trading.positions import Position, apply_fill

TRADING = Schema("trading", [
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
])

TABLES = ("gate_decisions", "orders", "fills", "positions", "daily_pnl", "strategy_approvals")

_INSERT_DECISION = insert_sql("gate_decisions", (
    "decision_id", "decided_at", "run_id", "event_id", "agent", "strategy", "order_key", "symbol", "side",
    "notional_usd", "approved", "reason_code", "reason", "kill_switch_state", "inputs"))
_INSERT_ORDER = insert_sql("orders", (
    "order_id", "order_key", "created_at", "run_id", "event_id", "agent", "strategy", "symbol", "side", "venue",
    "sell_venue", "size", "limit_price", "notional_usd", "capital_usd", "status", "reject_reason", "paper",
    "decision_id"))
_INSERT_FILL = insert_sql("fills", (
    "fill_id", "order_id", "leg", "filled_at", "strategy", "symbol", "venue", "side", "size", "price", "fee_usd",
    "slippage_bps", "realized_pnl_usd"))
_INSERT_POSITION = insert_sql("positions", (
    "strategy", "symbol", "qty", "avg_price", "realized_pnl_usd", "fees_usd", "updated_at"))
_INSERT_DAILY_PNL = insert_sql("daily_pnl", ("trading_date", "realized_pnl_usd", "loss_usd", "fills", "updated_at"))


def json_safe(value: Any, depth: int = 0) -> Any:
    """A JSON-storable copy: non-finite floats and odd objects become strings, so inputs are kept as seen."""
    if depth > 6:
        return repr(value)[:200]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return utf8_safe(value)
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
        return {utf8_safe(k if isinstance(k, str) else repr(k)): json_safe(v, depth + 1) for k, v in value.items()}
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


def record_decision(conn, decision, *, run_id: str | None, event_id: str | None, agent: str | None,
                    strategy: str | None) -> str:
    """One gate decision (``guardrails.Decision``), approved or denied, with the inputs as the gate saw them."""
    inputs = decision.inputs if isinstance(decision.inputs, Mapping) else {}

    def text(key: str) -> str | None:
        value = inputs.get(key)
        return utf8_safe(value) if isinstance(value, str) else None

    notional = finite_number(inputs.get("notional_usd"))
    stored = dict(inputs)
    if isinstance(stored.get("approvals"), (list, tuple)):  # tokens stay in strategy_approvals
        stored["approvals"] = f"{len(stored['approvals'])} token(s)"
    decision_id = new_id()
    conn.execute(
        _INSERT_DECISION,
        [decision_id, decision.decided_at, run_id, event_id, agent, strategy, text("order_key"), text("symbol"),
         text("side"), notional, decision.ok, decision.code.value, utf8_safe(str.__str__(decision.reason)),
         decision.kill_switch_state,
         json.dumps(json_safe(stored), allow_nan=False)])
    return decision_id


def record_order(conn, *, order_key: str, created_at: datetime, run_id: str | None, event_id: str | None,
                 agent: str, strategy: str, intent: Any, notional_usd: float, capital_usd: float | None,
                 status: str, reject_reason: str | None, paper: bool, decision_id: str) -> str:
    """One accepted order; ``intent`` is the routed order (symbol, side, venues, size, limit price), or None
    when the approved signal could not be routed (then those columns stay NULL). Returns the order id."""
    order_id = new_id()
    routed = (None,) * 6 if intent is None else (intent.symbol, intent.side, intent.venue, intent.sell_venue,
                                                 intent.size, intent.price)
    conn.execute(_INSERT_ORDER, [order_id, order_key, created_at, run_id, event_id, agent, strategy, *routed,
                                 notional_usd, capital_usd, status, reject_reason, paper, decision_id])
    return order_id


def record_fill(conn, *, order_id: str, strategy: str, fill: Any, at: datetime) -> float:
    """Book one broker fill (leg, symbol, venue, side, size, price, fee_usd, slippage_bps): the position moves by
    average cost and the fill row keeps its realised PnL (fee included), which is returned."""
    held = read_position(conn, strategy, fill.symbol)
    position, pnl = apply_fill(held or Position(), side=fill.side, size=fill.size, price=fill.price,
                               fee_usd=fill.fee_usd)
    if held is None:
        conn.execute(_INSERT_POSITION, [strategy, fill.symbol, position.qty, position.avg_price,
                                        position.realized_pnl_usd, position.fees_usd, at])
    else:
        conn.execute("UPDATE positions SET qty = ?, avg_price = ?, realized_pnl_usd = ?, fees_usd = ?, "
                     "updated_at = ? WHERE strategy = ? AND symbol = ?",
                     [position.qty, position.avg_price, position.realized_pnl_usd, position.fees_usd, at, strategy,
                      fill.symbol])
    conn.execute(_INSERT_FILL, [new_id(), order_id, fill.leg, at, strategy, fill.symbol, fill.venue, fill.side,
                                fill.size, fill.price, fill.fee_usd, fill.slippage_bps, pnl])
    return pnl


def read_position(conn, strategy: str, symbol: str) -> Position | None:
    """One strategy's position in one symbol, or None when it never traded it."""
    row = conn.execute("SELECT qty, avg_price, realized_pnl_usd, fees_usd FROM positions "
                       "WHERE strategy = ? AND symbol = ?", [strategy, symbol]).fetchone()
    return None if row is None else Position(*(float(v) for v in row))


def add_daily_pnl(conn, day: date, pnl_usd: float, at: datetime) -> None:
    """Add one fill's realised PnL to its UTC trading day; a loss also adds to the day's loss budget."""
    loss = max(0.0, -pnl_usd)
    changed = conn.execute(
        "UPDATE daily_pnl SET realized_pnl_usd = realized_pnl_usd + ?, loss_usd = loss_usd + ?, "
        "fills = fills + 1, updated_at = ? WHERE trading_date = ?", [pnl_usd, loss, at, day]).fetchone()[0]
    if not changed:
        conn.execute(_INSERT_DAILY_PNL, [day, pnl_usd, loss, 1, at])
