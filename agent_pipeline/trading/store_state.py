"""The gate's memory in the store: the same questions as ``state.MemoryGateState``, answered from the trading
tables, so they survive restarts and every process sees the same answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from agent_pipeline.store import Store
from agent_pipeline.trading import tables
from agent_pipeline.trading.breaker import BreakerReading, read_breaker
from agent_pipeline.trading.config import GuardrailConfig


class StoreGateState:
    """``bind(conn)`` makes every question join the caller's transaction; unbound, each opens its own."""

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
        with self.store.transaction(timeout_s=self.timeout_s, schema=tables.TRADING) as conn:
            yield conn

    def daily_loss_usd(self, day: date) -> float:
        with self._connection() as conn:
            row = conn.execute("SELECT sum(loss_usd) FROM daily_pnl WHERE trading_date = ?", [day]).fetchone()
        return float(row[0] or 0.0)

    def add_pnl(self, day: date, pnl_usd: float) -> None:
        with self._connection() as conn:
            tables.add_daily_pnl(conn, day, pnl_usd, datetime.now(UTC))

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
            held = tables.read_position(conn, strategy, symbol)
        return (held.qty, held.avg_price) if held else (0.0, 0.0)

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
