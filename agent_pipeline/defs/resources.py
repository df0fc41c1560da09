"""Resources shared by every domain: the DuckDB store and the market source."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from agent_pipeline.market import MarketConfig, MarketSource, make_market
from agent_pipeline.settings import pipeline_home
from agent_pipeline.store import DB_FILE, Store


class StoreResource(DuckDBResource):
    """The project's DuckDB file, reached through the store's lock so concurrent op processes queue, not fail.

    Unlike the stock DuckDBResource (read-write connect with ~100 s of blind retries), every connection here
    waits on one advisory lock with a bounded timeout and is closed as soon as the block ends.
    """

    database: str = Field(default="", description="DuckDB file; empty means $AGENT_PIPELINE_HOME/" + DB_FILE)
    lock_timeout_s: float = Field(default=120.0, gt=0, description="How long a writer waits for the store lock.")

    def store(self) -> Store:
        return Store(self.database or pipeline_home() / DB_FILE)

    @contextmanager
    def get_connection(self) -> Iterator:  # type: ignore[override]
        with self.store().connect(timeout_s=self.lock_timeout_s) as conn:
            yield conn


class MarketResource(dg.ConfigurableResource):
    """Market data for agents. Unset fields fall back to config.toml's [market] table, then the defaults
    (the seeded simulated market). Raise ``fault_rate`` to stage a fault storm."""

    source: str | None = Field(default=None, description="simulated | replay | ccxt")
    seed: int | None = Field(default=None, description="Seed of the simulated market.")
    fault_rate: float | None = Field(default=None, ge=0, le=1, description="Probability a quote request fails.")
    stale_prob: float | None = Field(default=None, ge=0, le=1, description="Share of venue-minutes quoting stale.")
    dislocation_prob: float | None = Field(default=None, ge=0, le=1, description="Share of venue-minutes dislocated.")
    replay_path: str | None = Field(default=None, description="CSV/Parquet of quotes for the replay source.")

    def config(self) -> MarketConfig:
        base = MarketConfig.load()
        overrides = {k: v for k, v in self.model_dump().items() if v is not None}
        return MarketConfig.from_mapping({**{k: getattr(base, k) for k in base.__dataclass_fields__}, **overrides})

    def make(self, consumer: str = "") -> MarketSource:
        return make_market(self.config(), consumer=consumer)


def default_resources() -> dict[str, object]:
    return {"store": StoreResource(), "market": MarketResource()}
