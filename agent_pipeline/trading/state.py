"""What the gate needs to remember between orders: daily loss, recent orders, order keys, positions, breaches.

``MemoryGateState`` keeps it in the process (the prototype's behaviour, and what the latency benchmark measures).
``agent_pipeline.trading.store_state.StoreGateState`` answers the same questions from the store, so they survive
restarts and are shared by every process. Trading dates are UTC calendar dates (``trading_date``).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
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
    def position(self, strategy: str, symbol: str) -> tuple[float, float]: ...
    def orders_in_run(self, run: str) -> int: ...
    def breaker_breach(self, now: datetime) -> str | None: ...
    def note_order(self, at: datetime, strategy: str, notional_usd: float, order_key: str | None,
                   run: str | None = None) -> None: ...


class _OrderLog:
    """Accepted orders by time with running notional sums: window counts and sums in O(log n)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.cum: list[float] = []  # cumulative notional up to and including each order

    def add(self, at: float, notional: float) -> None:
        if self.times and at < self.times[-1]:  # out of order (rare): rebuild the sums
            pairs = list(zip(self.times, self._amounts(), strict=True)) + [(at, notional)]
            pairs.sort()
            self.times, self.cum = [], []
            for t, n in pairs:
                self.add(t, n)
            return
        self.times.append(at)
        self.cum.append((self.cum[-1] if self.cum else 0.0) + notional)

    def _amounts(self) -> list[float]:
        return [c - (self.cum[i - 1] if i else 0.0) for i, c in enumerate(self.cum)]

    def since(self, start: float) -> tuple[int, float]:
        i = bisect.bisect_left(self.times, start)
        if i >= len(self.times):
            return 0, 0.0
        return len(self.times) - i, self.cum[-1] - (self.cum[i - 1] if i else 0.0)

    def trim(self, before: float) -> None:
        i = bisect.bisect_left(self.times, before)
        if i > 4096:  # amortised: drop old orders in large chunks
            del self.times[:i]
            del self.cum[:i]


class MemoryGateState:
    """In-process state. ``set_position`` and ``set_breach`` let callers and tests shape it."""

    def __init__(self) -> None:
        self._loss: dict[date, float] = defaultdict(float)
        self._keys: set[str] = set()
        self._all = _OrderLog()
        self._by_strategy: dict[str, _OrderLog] = defaultdict(_OrderLog)
        self._positions: dict[tuple[str, str], tuple[float, float]] = {}
        self._runs: dict[str, int] = defaultdict(int)
        self._breach: str | None = None

    def daily_loss_usd(self, day: date) -> float:
        return self._loss.get(day, 0.0)

    def add_pnl(self, day: date, pnl_usd: float) -> None:
        self._loss[day] += max(0.0, -pnl_usd)

    def order_key_seen(self, key: str) -> bool:
        return key in self._keys

    def orders_since(self, since: datetime, strategy: str | None = None) -> tuple[int, float]:
        log = self._all if strategy is None else self._by_strategy.get(strategy)
        return log.since(since.timestamp()) if log is not None else (0, 0.0)

    def gross_exposure_usd(self, strategy: str) -> float:
        return sum(abs(qty) * price for (s, _), (qty, price) in self._positions.items() if s == strategy)

    def position_qty(self, strategy: str, symbol: str) -> float:
        return self._positions.get((strategy, symbol), (0.0, 0.0))[0]

    def position(self, strategy: str, symbol: str) -> tuple[float, float]:
        return self._positions.get((strategy, symbol), (0.0, 0.0))

    def set_position(self, strategy: str, symbol: str, qty: float, price: float) -> None:
        self._positions[(strategy, symbol)] = (qty, price)

    def orders_in_run(self, run: str) -> int:
        return self._runs.get(run, 0)

    def breaker_breach(self, now: datetime) -> str | None:
        return self._breach

    def set_breach(self, message: str | None) -> None:
        self._breach = message

    def note_order(self, at: datetime, strategy: str, notional_usd: float, order_key: str | None,
                   run: str | None = None) -> None:
        if order_key:
            self._keys.add(order_key)
        if run:
            self._runs[run] += 1
        stamp = at.timestamp()
        self._all.add(stamp, notional_usd)
        self._by_strategy[strategy].add(stamp, notional_usd)
        horizon = stamp - _KEEP.total_seconds()  # bounded memory; the windows are minutes to hours
        self._all.trim(horizon)
        self._by_strategy[strategy].trim(horizon)
