"""Time-series momentum: a fast/slow EMA crossover scaled by realised volatility gives side, edge and confidence."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agent_pipeline.agents.builtin.identity import identity
from agent_pipeline.agents.protocol import AgentContext, AgentKind, AgentResult
from agent_pipeline.market.base import MarketDataError


def _ema(values: np.ndarray, span: int) -> float:
    alpha = 2.0 / (span + 1.0)
    weights = (1 - alpha) ** np.arange(len(values))[::-1]
    return float(np.dot(values, weights) / weights.sum())


@dataclass
class Momentum(identity("momentum", AgentKind.SIGNAL)):
    symbol: str = "BTC-USD"
    step_sec: int = 5
    fast_steps: int = 12
    slow_steps: int = 120
    notional_usd: float = 5_000.0
    edge_capture: float = 0.5
    cost_usd: float = 0.0005

    def signal(self, mids: list[float]) -> dict:
        prices = np.asarray(mids, dtype=np.float64)
        if len(prices) < self.slow_steps or not np.all(np.isfinite(prices)) or np.any(prices <= 0):
            raise MarketDataError(f"momentum needs {self.slow_steps} finite prices, got {len(prices)}")
        log_ret = np.diff(np.log(prices))
        vol = float(np.std(log_ret)) or 1e-12
        trend = (_ema(prices, self.fast_steps) - _ema(prices, self.slow_steps)) / prices[-1]
        z = float(trend / (vol * math.sqrt(self.fast_steps)))
        confidence = float(min(0.99, abs(z) / 3.0))
        edge_bps = float(abs(trend) * 10_000.0 * self.edge_capture * confidence)
        return {"side": "buy" if z > 0 else "sell", "z": z, "confidence": confidence,
                "expected_edge_bps": edge_bps, "vol_bps": vol * 10_000.0}

    def run(self, ctx: AgentContext) -> AgentResult:
        mids = ctx.market.mid_history(self.symbol, ctx.now, self.slow_steps * self.step_sec, self.step_sec)
        sig = self.signal(mids)
        quotes = [q for q in ctx.market.quotes(ctx.now) if q.symbol == self.symbol and q.valid]
        if not quotes:
            raise MarketDataError(f"no valid quote for {self.symbol}")
        best = min(quotes, key=lambda q: q.ask) if sig["side"] == "buy" else max(quotes, key=lambda q: q.bid)
        price = best.ask if sig["side"] == "buy" else best.bid
        size = self.notional_usd / price
        quote_size = best.ask_size if sig["side"] == "buy" else best.bid_size
        item = {
            "profit_pct": float(sig["expected_edge_bps"]) / 100.0,
            "symbol": self.symbol, "side": sig["side"], "venue": best.venue, "price": price,
            "size": size, "notional_usd": self.notional_usd, "quote_size": quote_size,
            "expected_edge_bps": float(sig["expected_edge_bps"]), "confidence": sig["confidence"],
            "spread_bps": best.spread_bps, "slippage_bps": round(2.0 * size / max(quote_size, 1e-9), 4),
            "data_age_sec": best.data_age_sec, "reference_price": mids[-1], "paper": True,
            "z": sig["z"], "vol_bps": sig["vol_bps"],
        }
        return AgentResult([item], cost_usd=self.cost_usd)
