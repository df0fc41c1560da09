"""Cross-venue arbitrage: buy where the ask is low, sell where the bid is high, after both venues' fees."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from agent_pipeline.agents.builtin.identity import identity
from agent_pipeline.agents.protocol import AgentContext, AgentKind, AgentResult
from agent_pipeline.market.base import Quote


@dataclass
class CrossVenueArbitrage(identity("cross_venue_arb", AgentKind.EXECUTION_SENSITIVE)):
    default_fee_bps: float = 6.0
    max_notional_usd: float = 10_000.0
    cost_per_quote_usd: float = 0.0001

    def _fee(self, market, venue: str) -> float:
        fee = getattr(market, "fee_bps", None)
        return float(fee(venue)) if callable(fee) else self.default_fee_bps

    def opportunities(self, quotes: list[Quote], market) -> list[dict]:
        by_symbol: dict[str, list[Quote]] = {}
        for q in quotes:
            if q.valid:
                by_symbol.setdefault(q.symbol, []).append(q)
        found = []
        for symbol, qs in by_symbol.items():
            for buy, sell in itertools.permutations(qs, 2):
                buy_fee, sell_fee = self._fee(market, buy.venue), self._fee(market, sell.venue)
                cost = buy.ask * (1 + buy_fee / 10_000)
                proceeds = sell.bid * (1 - sell_fee / 10_000)
                profit_pct = (proceeds - cost) / cost * 100.0
                if profit_pct <= 0:
                    continue
                size = min(buy.ask_size, sell.bid_size, self.max_notional_usd / buy.ask)
                found.append({
                    "profit_pct": round(profit_pct, 6),
                    "symbol": symbol, "side": "buy", "venue": buy.venue,
                    "buy_venue": buy.venue, "sell_venue": sell.venue,
                    "buy_price": buy.ask, "sell_price": sell.bid, "price": buy.ask,
                    "size": size, "notional_usd": size * buy.ask, "quote_size": buy.ask_size,
                    "spread_bps": max(buy.spread_bps, sell.spread_bps),
                    "slippage_bps": round(2.0 * size / max(buy.ask_size, 1e-9), 4),
                    "expected_edge_bps": round(profit_pct * 100.0, 4),
                    "confidence": 1.0 if max(buy.data_age_sec, sell.data_age_sec) < 1.0 else 0.5,
                    "data_age_sec": max(buy.data_age_sec, sell.data_age_sec),
                    "reference_price": (buy.mid + sell.mid) / 2.0,
                    "paper": True,
                })
        return sorted(found, key=lambda o: o["profit_pct"], reverse=True)

    def run(self, ctx: AgentContext) -> AgentResult:
        quotes = ctx.market.quotes(ctx.now)
        return AgentResult(self.opportunities(quotes, ctx.market), cost_usd=self.cost_per_quote_usd * len(quotes))
