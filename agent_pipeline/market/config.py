"""Which market source the agents read: the ``[market]`` table of config.toml.

    [market]
    source = "simulated"     # simulated | replay | ccxt
    seed = 7
    fault_rate = 0.002       # share of quote requests that fail (raise it to stage a fault storm)

What would only fail at the first run fails at load instead, naming the key: a ``replay_path`` that does not exist
or is not a regular file (a FIFO would hang every run that reads it), ``source = "ccxt"`` with no exchange, or
without the ccxt extra installed.
"""

from __future__ import annotations

import importlib.util
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_pipeline.config_fields import BOOL, INT, NUMBER, TABLE, TEXT, TEXTS, ConfigTable, setting
from agent_pipeline.market.base import MarketSource
from agent_pipeline.safe_files import describe

SOURCES = ("simulated", "replay", "ccxt")


@dataclass(frozen=True)
class MarketConfig(ConfigTable):
    SECTION = "[market]"

    source: str = setting("simulated", TEXT, choices=SOURCES, doc="where quotes come from")
    seed: int = setting(7, INT, ge=0, doc="seed of the simulated market")
    symbols: tuple[str, ...] = setting(("BTC-USD", "ETH-USD"), TEXTS, min_items=1, pattern=r"\S+",
                                       pattern_doc="be a symbol without spaces", doc="symbols quoted")
    fault_rate: float = setting(0.002, NUMBER, ge=0, le=1, doc="probability a quote request fails")
    stale_prob: float = setting(0.03, NUMBER, ge=0, le=1, doc="share of venue-minutes quoting stale")
    dislocation_prob: float = setting(0.08, NUMBER, ge=0, le=1, doc="share of venue-minutes dislocated")
    replay_path: str = setting("", TEXT, doc="CSV/Parquet of quotes for the replay source (empty: the bundled sample)")
    replay_loop: bool = setting(True, BOOL, doc="start the replay file over at its end")
    exchanges: tuple[str, ...] = setting(("kraken", "coinbase"), TEXTS, doc="exchanges of the ccxt source")
    extra: dict[str, Any] = setting(kind=TABLE, factory=dict, doc="options of a custom source")  # noqa: RUF009

    def check(self, where: str) -> None:
        if self.replay_path:
            path = replay_file(self)
            try:
                st = path.stat()
            except FileNotFoundError:
                raise self.ERROR(f"{where} replay_path {str(path)!r} does not exist") from None
            except OSError as exc:
                raise self.ERROR(f"{where} replay_path {str(path)!r} cannot be read: {exc.strerror}") from None
            if not stat.S_ISREG(st.st_mode):
                raise self.ERROR(f"{where} replay_path {str(path)!r} is {describe(st.st_mode)}, not a regular file")
            if not os.access(path, os.R_OK):
                raise self.ERROR(f"{where} replay_path {str(path)!r} is not readable by this user")
        if self.source == "ccxt":
            if not self.exchanges:
                raise self.ERROR(f"{where} exchanges must name at least one exchange when source = \"ccxt\"")
            if importlib.util.find_spec("ccxt") is None:
                raise self.ERROR(f"{where} source = \"ccxt\" needs the optional extra: "
                                 "pip install 'agent_pipeline[ccxt]'")


def replay_file(config: MarketConfig) -> Path:
    """The replay file ``config`` names (``~`` expanded), or the bundled sample."""
    if not config.replay_path:
        from agent_pipeline.market.replay import SAMPLE_FILE

        return SAMPLE_FILE
    return Path(config.replay_path).expanduser()


def make_market(config: MarketConfig, consumer: str = "") -> MarketSource:
    """Build the configured source; ``consumer`` (the agent's name) salts simulated fault draws."""
    if config.source == "simulated":
        from agent_pipeline.market.simulated import SimulatedMarket

        return SimulatedMarket(
            seed=config.seed, symbols=config.symbols, fault_rate=config.fault_rate,
            stale_prob=config.stale_prob, dislocation_prob=config.dislocation_prob, consumer=consumer,
        )
    if config.source == "replay":
        from agent_pipeline.market.replay import ReplayMarket

        return ReplayMarket(replay_file(config), loop=config.replay_loop)
    from agent_pipeline.market.ccxt_source import CcxtMarket

    return CcxtMarket(exchanges=config.exchanges, symbols=config.symbols)
