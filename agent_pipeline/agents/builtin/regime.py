"""A macro/regime watcher: classifies the market (calm, trending, volatile, dislocated) and never trades."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agent_pipeline.agents.builtin.identity import identity
from agent_pipeline.agents.protocol import AgentContext, AgentKind, AgentResult


@dataclass
class RegimeWatcher(identity("regime_watcher", AgentKind.WATCHER, strategy="macro_regime")):
    lookback_sec: int = 3_600
    step_sec: int = 30
    volatile_bps: float = 12.0
    trending_z: float = 2.0
    dislocated_bps: float = 25.0
    cost_usd: float = 0.0001

    def classify(self, mids: list[float], dispersion_bps: float) -> dict:
        prices = np.asarray(mids, dtype=np.float64)
        log_ret = np.diff(np.log(prices)) if len(prices) > 2 else np.zeros(1)
        vol_bps = float(np.std(log_ret)) * 10_000.0
        trend_bps = float(np.sum(log_ret)) * 10_000.0
        trend_z = trend_bps / (vol_bps * math.sqrt(len(log_ret))) if vol_bps > 0 else 0.0
        if dispersion_bps > self.dislocated_bps:
            regime = "dislocated"
        elif vol_bps > self.volatile_bps:
            regime = "volatile"
        elif abs(trend_z) > self.trending_z:
            regime = "trending"
        else:
            regime = "calm"
        return {"regime": regime, "realized_vol_bps": vol_bps, "trend_bps": trend_bps, "trend_z": trend_z,
                "dispersion_bps": dispersion_bps}

    def run(self, ctx: AgentContext) -> AgentResult:
        quotes = [q for q in ctx.market.quotes(ctx.now) if q.valid]
        out = []
        for symbol in ctx.market.symbols:
            mids = [q.mid for q in quotes if q.symbol == symbol]
            dispersion = (max(mids) - min(mids)) / min(mids) * 10_000.0 if len(mids) > 1 else 0.0
            history = ctx.market.mid_history(symbol, ctx.now, self.lookback_sec, self.step_sec)
            out.append({"symbol": symbol, **self.classify(history, dispersion)})
        return AgentResult(out, cost_usd=self.cost_usd)
