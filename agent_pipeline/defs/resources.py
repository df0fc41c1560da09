"""Resources shared by every domain, each carrying concrete values built from the loaded settings: the store
(the DuckDB file, or the database ``[store] url`` names), the market source, the reward configuration and the persisted kill switch.

``shared_resources(settings)`` is what ``agent_pipeline.definitions`` binds. A path field left empty means the
file in ``$AGENT_PIPELINE_HOME`` at use (what a bare ``StoreResource()`` in a test gives); the definitions always
pass the path of the settings' home. Config-carrying resources have every key required and are built with
``from_config``; to change a value for one run, use the asset's run config (``agent_rewards``,
``allocator_quotas``), layered over the resource's value.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from agent_pipeline.defs.config_models import config_resource
from agent_pipeline.market import MarketConfig, MarketSource, make_market
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.reward import RewardConfig
from agent_pipeline.settings import pipeline_home
from agent_pipeline.store import DB_FILE, Store
from agent_pipeline.store.config import STORE_URL_ENV, redact
from agent_pipeline.trading.kill_switch import default_path
from agent_pipeline.trading.kill_switch_store import kill_switch_for


class StoreResource(DuckDBResource):
    """The project's store, reached through the store's lock so concurrent op processes queue, not fail.

    Unlike the stock DuckDBResource (read-write connect with ~100 s of blind retries), every connection here
    waits on one advisory lock (a file lock, or the database's own) with a bounded timeout and is closed as soon
    as the block ends.
    """

    database: str = Field(default="", description="DuckDB file or postgresql:// URL; empty means "
                                                  "$AGENT_PIPELINE_HOME/" + DB_FILE)
    lock_timeout_s: float = Field(default=120.0, gt=0, description="How long a writer waits for the store lock.")

    def store(self) -> Store:
        return Store(self.database or pipeline_home() / DB_FILE)

    @contextmanager
    def get_connection(self) -> Iterator:  # type: ignore[override]
        with self.store().connect(timeout_s=self.lock_timeout_s) as conn:
            yield conn


class MarketResource(config_resource(MarketConfig)):
    """Market data for agents and the paper broker: the ``[market]`` table's values (a seeded simulated market
    by default). Raise ``fault_rate`` to stage a fault storm."""

    def make(self, consumer: str = "") -> MarketSource:
        return make_market(self.config(), consumer=consumer)


class RewardConfigResource(config_resource(RewardConfig)):
    """Reward parameters for pricing runs and recomputing history (``[reward]``, ``[reward.history]``); to
    reprice with another value for one backfill, use ``agent_rewards``' run config (``RewardRunConfig``)."""


class KillSwitchResource(dg.ConfigurableResource):
    """The persisted kill switch every gate, sensor and control job reads and writes: one file per home with the
    embedded store, the store's own table with a shared database (so a trip on one host halts every host)."""

    path: str = Field(default="", description="The kill-switch file; empty means $AGENT_PIPELINE_HOME/"
                                              "kill_switch.json.")
    database: str = Field(default="", description="The store: a shared store's postgresql:// URL, where the switch "
                                                  "lives; else the DuckDB file that anchors the switch file's "
                                                  "version (so its files cannot be rolled back together). Empty: "
                                                  "the store beside the kill-switch file.")

    def switch(self):
        return kill_switch_for(self.database, self.path or default_path())


def store_location_field(settings: Settings):
    """The store's location; a URL with a password is handed over as the environment variable it came from, so
    the Dagster UI shows the variable's name, never the password."""
    location = settings.store_location
    return dg.EnvVar(STORE_URL_ENV) if redact(location) != location else location


def shared_resources(settings: Settings) -> dict[str, object]:
    """The resources every domain's definitions use, with the values of ``settings``."""
    return {
        "store": StoreResource(database=store_location_field(settings)),
        "market": MarketResource.from_config(settings.market),
        "reward_config": RewardConfigResource.from_config(settings.reward),
        "kill_switch": KillSwitchResource(path=str(settings.kill_switch_path),
                                          database=store_location_field(settings)),
    }
