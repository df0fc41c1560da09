"""What the gate needs to remember between orders: daily loss, recent orders, order keys, positions, breaches.

``MemoryGateState`` keeps it in the process (the seed's behaviour, and what the latency benchmark measures).
``agent_pipeline.trading.ledger.StoreGateState`` answers the same questions from DuckDB, so they survive restarts
and are shared by every process. Trading dates are UTC calendar dates (``trading_date``).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol


_KEEP = timedelta(days=2)


def trading_date(moment: datetime) -> date:
    """The UTC calendar date a moment belongs to: the daily loss budget resets at 00:00 UTC, never on restart."""
    if moment.tzinfo is None:
        raise ValueError("trading_date needs a timezone-aware datetime")
    return moment.astimezone(UTC).date()


class GateState(Protocol):
    def daily_loss_usd(self, day: date) -> float: ...
    def add_pnl(self, day: date, pnl_usd: float) -> None: ...
    def order_key_seen(self, key: str) -> bool: ...
    def orders_since(self, since: datetime, strategy: str | None = None) -> tuple[int, float]: ...
    def gross_exposure_usd(self, strategy: str) -> float: ...
    def position_qty(self, strategy: str, symbol: str) -> float: ...
    def breaker_breach(self, now: datetime) -> str | None: ...
    def note_order(self, at: datetime, strategy: str, notional_usd: float, order_key: str | None) -> None: ...


@dataclass
class _Order:
    at: datetime
    strategy: str
    notional_usd: float


class MemoryGateState:
    """In-process state. ``set_position`` and ``set_breach`` let callers and tests shape it."""

    def __init__(self) -> None:
        self._loss: dict[date, float] = defaultdict(float)
        self._net: dict[date, float] = defaultdict(float)
        self._keys: set[str] = set()
        self._orders: list[_Order] = []
        self._positions: dict[tuple[str, str], tuple[float, float]] = {}
        self._breach: str | None = None

    def daily_loss_usd(self, day: date) -> float:
        return self._loss.get(day, 0.0)

    def daily_pnl_usd(self, day: date) -> float:
        return self._net.get(day, 0.0)

    def add_pnl(self, day: date, pnl_usd: float) -> None:
        self._net[day] += pnl_usd
        self._loss[day] += max(0.0, -pnl_usd)

    def order_key_seen(self, key: str) -> bool:
        return key in self._keys

    def orders_since(self, since: datetime, strategy: str | None = None) -> tuple[int, float]:
        start = bisect.bisect_left([o.at for o in self._orders], since)
        recent = [o for o in self._orders[start:] if strategy is None or o.strategy == strategy]
        return len(recent), sum(o.notional_usd for o in recent)

    def gross_exposure_usd(self, strategy: str) -> float:
        return sum(abs(qty) * price for (s, _), (qty, price) in self._positions.items() if s == strategy)

    def position_qty(self, strategy: str, symbol: str) -> float:
        return self._positions.get((strategy, symbol), (0.0, 0.0))[0]

    def set_position(self, strategy: str, symbol: str, qty: float, price: float) -> None:
        self._positions[(strategy, symbol)] = (qty, price)

    def breaker_breach(self, now: datetime) -> str | None:
        return self._breach

    def set_breach(self, message: str | None) -> None:
        self._breach = message

    def note_order(self, at: datetime, strategy: str, notional_usd: float, order_key: str | None) -> None:
        if order_key:
            self._keys.add(order_key)
        order = _Order(at, strategy, notional_usd)
        if self._orders and at < self._orders[-1].at:
            bisect.insort(self._orders, order, key=lambda o: o.at)
        else:
            self._orders.append(order)
        if self._orders[0].at < at - _KEEP:  # bounded memory; the windows are minutes to hours
            start = bisect.bisect_left([o.at for o in self._orders], at - _KEEP)
            del self._orders[:start]
