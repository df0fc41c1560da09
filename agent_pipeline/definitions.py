"""The code location: loads the settings and the agent registry once, hands them to each domain's definitions,
and binds the shared resources built from the same settings."""

from __future__ import annotations

import dagster as dg

from agent_pipeline.agents import build_registry
from agent_pipeline.defs import agents
from agent_pipeline.defs import allocation as allocation_defs
from agent_pipeline.defs import housekeeping as housekeeping_defs
from agent_pipeline.defs import metrics as metrics_defs
from agent_pipeline.defs import reward as reward_defs
from agent_pipeline.defs import trading as trading_defs
from agent_pipeline.defs.resources import shared_resources
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.trading.secrets import take_secrets

DOMAINS = (agents, allocation_defs, housekeeping_defs, metrics_defs, reward_defs, trading_defs)


def build_location(settings: Settings) -> dg.Definitions:
    """Every domain's definitions for ``settings``; the registry is imported and built here, once."""
    registry = build_registry(settings.agents)
    return dg.Definitions.merge(*(domain.build_defs(settings, registry) for domain in DOMAINS),
                                dg.Definitions(resources=shared_resources(settings)))


take_secrets()  # before any agent's code is imported: the keys leave os.environ (trading/secrets.py)
defs = build_location(Settings.load())
