"""What every market data source provides: venue quotes at a moment and a mid-price history."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


class MarketDataError(RuntimeError):
    """The source could not deliver data (outage, injected fault, missing file, unknown symbol)."""


@dataclass(frozen=True)
class Quote:
    """Top of book on one venue. ``ts`` is when the venue quoted it; ``data_age_sec`` is relative to the ask."""

    venue: str
    symbol: str
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    ts: datetime
    data_age_sec: float = 0.0

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0

    @property
    def spread_bps(self) -> float:
        return (self.ask - self.bid) / self.mid * 10_000.0 if self.mid > 0 else math.inf

    @property
    def valid(self) -> bool:
        """Usable for pricing: finite, positive, not crossed."""
        nums = (self.bid, self.ask, self.bid_size, self.ask_size, self.data_age_sec)
        return all(math.isfinite(x) for x in nums) and 0 < self.bid <= self.ask and self.data_age_sec >= 0


@runtime_checkable
class MarketSource(Protocol):
    """A source of quotes. ``now`` is explicit so runs and tests are reproducible."""

    venues: tuple[str, ...]
    symbols: tuple[str, ...]

    def quotes(self, now: datetime) -> list[Quote]:
        """The latest quote of every venue and symbol as seen at ``now``; raises MarketDataError on failure."""

    def mid_history(self, symbol: str, now: datetime, lookback_sec: int, step_sec: int = 1) -> list[float]:
        """Reference mid prices for ``symbol`` over the last ``lookback_sec`` seconds, oldest first."""
