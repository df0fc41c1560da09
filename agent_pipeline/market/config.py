"""Which market source the agents read, from the ``[market]`` table of config.toml or resource config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent_pipeline.market.base import MarketSource
from agent_pipeline.settings import ConfigError, config_section, strict_fields

SOURCES = ("simulated", "replay", "ccxt")


@dataclass(frozen=True)
class MarketConfig:
    source: str = "simulated"
    seed: int = 7
    symbols: tuple[str, ...] = ("BTC-USD", "ETH-USD")
    fault_rate: float = 0.002
    stale_prob: float = 0.03
    dislocation_prob: float = 0.08
    replay_path: str = ""
    replay_loop: bool = True
    exchanges: tuple[str, ...] = ("kraken", "coinbase")
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"[market] source must be one of {list(SOURCES)}, got {self.source!r}")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> MarketConfig:
        values = dict(strict_fields(cls, values, "[market]"))
        for key in ("symbols", "exchanges"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    @classmethod
    def load(cls, home=None) -> MarketConfig:
        return cls.from_mapping(config_section("market", home))


def make_market(config: MarketConfig, consumer: str = "") -> MarketSource:
    """Build the configured source; ``consumer`` (the agent's name) salts simulated fault draws."""
    if config.source == "simulated":
        from agent_pipeline.market.simulated import SimulatedMarket

        return SimulatedMarket(
            seed=config.seed, symbols=config.symbols, fault_rate=config.fault_rate,
            stale_prob=config.stale_prob, dislocation_prob=config.dislocation_prob, consumer=consumer,
        )
    if config.source == "replay":
        from agent_pipeline.market.replay import SAMPLE_FILE, ReplayMarket

        return ReplayMarket(config.replay_path or SAMPLE_FILE, loop=config.replay_loop)
    from agent_pipeline.market.ccxt_source import CcxtMarket

    return CcxtMarket(exchanges=config.exchanges, symbols=config.symbols)
