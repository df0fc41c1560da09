"""Market data: a seeded simulated multi-venue market (default), file replay, and an optional ccxt source."""

from agent_pipeline.market.base import MarketDataError, MarketSource, Quote
from agent_pipeline.market.config import MarketConfig, make_market
from agent_pipeline.market.replay import ReplayMarket
from agent_pipeline.market.simulated import SimulatedMarket

__all__ = ["MarketConfig", "MarketDataError", "MarketSource", "Quote", "ReplayMarket", "SimulatedMarket", "make_market"]
