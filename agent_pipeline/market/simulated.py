"""A seeded multi-venue market that needs no network: the embedded default.

It is stateless: the price at any second is a pure function of (seed, symbol, time), so separate processes
(one per Dagster op) see the same market without sharing anything. The reference mid is a geometric random
walk built day by day as a Brownian bridge between seeded daily levels; each venue adds its own basis noise,
spread, size and latency; occasional dislocations shift one venue for a minute (arbitrage appears), occasional
stale quotes come from minutes earlier, and injected faults raise MarketDataError so error paths get exercised.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import numpy as np

from agent_pipeline.market.base import MarketDataError, Quote
from agent_pipeline.numbers import finite_number

DAY = 86_400
_ANCHOR = datetime(2024, 1, 1, tzinfo=UTC)
_SYMBOL_BASE = {"BTC-USD": 60_000.0, "ETH-USD": 3_000.0, "SOL-USD": 150.0}


@dataclass(frozen=True)
class VenueProfile:
    name: str
    half_spread_bps: float
    latency_ms: float
    fee_bps: float


DEFAULT_VENUES: tuple[VenueProfile, ...] = (
    VenueProfile("sim_a", 1.0, 20.0, 4.0),
    VenueProfile("sim_b", 2.5, 80.0, 6.0),
    VenueProfile("sim_c", 4.0, 150.0, 10.0),
)


def _key(*parts: object) -> list[int]:
    return [zlib.crc32(str(p).encode()) for p in parts]


@lru_cache(maxsize=16)
def _daily_levels(seed: int, symbol: str, days: int, sigma_day: float) -> np.ndarray:
    """Log-price level at the start of each day since the anchor, days 0..days inclusive."""
    steps = np.random.default_rng(_key(seed, symbol, "daily")).standard_normal(days + 1) * sigma_day
    steps[0] = 0.0
    return math.log(_SYMBOL_BASE.get(symbol, 100.0)) + np.cumsum(steps)


@lru_cache(maxsize=16)
def _intraday_log_mid(seed: int, symbol: str, day: int, sigma_sec: float) -> np.ndarray:
    """Log mid for every second of one day: a bridge from this day's level to the next day's."""
    levels = _daily_levels(seed, symbol, (day // 256 + 1) * 256 + 1, sigma_sec * math.sqrt(DAY))
    walk = np.cumsum(np.random.default_rng(_key(seed, symbol, "intraday", day)).standard_normal(DAY) * sigma_sec)
    frac = np.arange(1, DAY + 1) / DAY
    bridge = walk - frac * walk[-1]
    start, end = levels[day], levels[day + 1]
    return np.concatenate(([start], start + frac[:-1] * (end - start) + bridge[:-1]))


@lru_cache(maxsize=64)
def _venue_day(seed: int, symbol: str, venue: str, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-second basis noise (bps) and size draws, and per-minute dislocation and staleness uniforms."""
    rng = np.random.default_rng(_key(seed, symbol, venue, day))
    basis = rng.standard_normal(DAY) * 0.6
    sizes = rng.uniform(0.2, 5.0, size=(DAY, 2))
    minute_u = rng.uniform(size=(1440, 3))  # dislocation draw, staleness draw, magnitude draw
    return basis, sizes[:, 0], sizes[:, 1], minute_u


class SimulatedMarket:
    """Deterministic simulated venues. ``consumer`` salts fault draws so each agent fails independently."""

    def __init__(
        self,
        seed: int = 7,
        symbols: tuple[str, ...] = ("BTC-USD", "ETH-USD"),
        venues: tuple[VenueProfile, ...] = DEFAULT_VENUES,
        *,
        annual_vol: float = 0.6,
        dislocation_prob: float = 0.08,
        dislocation_bps: float = 45.0,
        stale_prob: float = 0.03,
        fault_rate: float = 0.002,
        consumer: str = "",
    ):
        for name, p in (("dislocation_prob", dislocation_prob), ("stale_prob", stale_prob), ("fault_rate", fault_rate)):
            if finite_number(p) is None or not 0.0 <= p <= 1.0:
                raise ValueError(f"SimulatedMarket.{name} must be a probability in [0, 1], got {p!r}")
        if not symbols or not venues:
            raise ValueError("SimulatedMarket needs at least one symbol and one venue")
        self.seed = int(seed)
        self.symbols = tuple(symbols)
        self.profiles = {v.name: v for v in venues}
        self.venues = tuple(self.profiles)
        self.sigma_sec = annual_vol / math.sqrt(365 * DAY)
        self.dislocation_prob = dislocation_prob
        self.dislocation_bps = dislocation_bps
        self.stale_prob = stale_prob
        self.fault_rate = fault_rate
        self.consumer = consumer

    def fee_bps(self, venue: str) -> float:
        return self.profiles[venue].fee_bps

    # -- reference price -------------------------------------------------------------------------------------
    def _log_mid(self, symbol: str, second: int) -> float:
        day, sec = divmod(second, DAY)
        if day < 0:
            raise MarketDataError(f"simulated market starts at {_ANCHOR.isoformat()}")
        return float(_intraday_log_mid(self.seed, symbol, day, self.sigma_sec)[sec])

    @staticmethod
    def _second(now: datetime) -> int:
        if now.tzinfo is None:
            raise ValueError("market time must be timezone-aware (UTC)")
        return int((now - _ANCHOR).total_seconds())

    def mid_history(self, symbol: str, now: datetime, lookback_sec: int, step_sec: int = 1) -> list[float]:
        self._check_symbol(symbol)
        end = self._second(now)
        return [math.exp(self._log_mid(symbol, s)) for s in range(end - lookback_sec + step_sec, end + 1, step_sec)]

    def _check_symbol(self, symbol: str) -> None:
        if symbol not in self.symbols:
            raise MarketDataError(f"unknown symbol {symbol!r}; this market quotes {list(self.symbols)}")

    # -- venue quotes ----------------------------------------------------------------------------------------
    def _fault(self, second: int) -> bool:
        if self.fault_rate <= 0:
            return False
        u = np.random.default_rng(_key(self.seed, "fault", self.consumer, second)).uniform()
        return bool(u < self.fault_rate)

    def _venue_quote(self, symbol: str, venue: VenueProfile, second: int, now: datetime) -> Quote:
        day, sec = divmod(second, DAY)
        basis, bid_sz, ask_sz, minute_u = _venue_day(self.seed, symbol, venue.name, day)
        dislocated, stale_u, magnitude_u = minute_u[sec // 60]
        age = venue.latency_ms / 1000.0
        if stale_u < self.stale_prob:
            age += 30.0 + 270.0 * magnitude_u  # a quote left over from minutes ago
        quoted_second = second - int(age)
        mid = math.exp(self._log_mid(symbol, quoted_second))
        q_day, q_sec = divmod(quoted_second, DAY)
        q_basis = _venue_day(self.seed, symbol, venue.name, q_day)[0][q_sec]
        shift_bps = float(q_basis)
        if dislocated < self.dislocation_prob:
            shift_bps += (1 if magnitude_u < 0.5 else -1) * self.dislocation_bps * (0.5 + magnitude_u)
        mid *= 1.0 + shift_bps / 10_000.0
        half = mid * venue.half_spread_bps / 10_000.0 * (1.0 + 0.5 * abs(basis[sec]))
        return Quote(
            venue=venue.name, symbol=symbol, bid=float(mid - half), ask=float(mid + half),
            bid_size=float(bid_sz[sec]), ask_size=float(ask_sz[sec]),
            ts=now - timedelta(seconds=age), data_age_sec=age,
        )

    def quotes(self, now: datetime) -> list[Quote]:
        second = self._second(now)
        if self._fault(second):
            raise MarketDataError(f"simulated venue outage at {now.isoformat()} (injected fault)")
        return [self._venue_quote(s, v, second, now) for s in self.symbols for v in self.profiles.values()]
