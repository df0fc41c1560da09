"""The code location: loads the settings and the agent registry once, hands them to each domain's definitions,
binds the shared resources built from the same settings, and adds the sensor that runs the loop's automation.
Every asset links to its source (the UI's code references)."""

from __future__ import annotations

import warnings

import dagster as dg

from agent_pipeline.agents import build_registry
from agent_pipeline.defs import agents
from agent_pipeline.defs import allocation as allocation_defs
from agent_pipeline.defs import housekeeping as housekeeping_defs
from agent_pipeline.defs import metrics as metrics_defs
from agent_pipeline.defs import reward as reward_defs
from agent_pipeline.defs import trading as trading_defs
from agent_pipeline.defs.automation import build_automation_sensor
from agent_pipeline.defs.resources import shared_resources
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.trading.secrets import take_secrets

DOMAINS = (agents, allocation_defs, housekeeping_defs, metrics_defs, reward_defs, trading_defs)


def build_location(settings: Settings) -> dg.Definitions:
    """Every domain's definitions for ``settings``; the registry is imported and built here, once."""
    registry = build_registry(settings.agents)
    merged = dg.Definitions.merge(*(domain.build_defs(settings, registry) for domain in DOMAINS),
                                  dg.Definitions(resources=shared_resources(settings),
                                                 sensors=[build_automation_sensor()]))
    with warnings.catch_warnings():  # code references are a beta API in Dagster 1.13; relied on knowingly
        warnings.simplefilter("ignore", dg.BetaWarning)
        assets = dg.with_source_code_references(list(merged.assets or []))
    return dg.Definitions(assets=assets,
                          asset_checks=merged.asset_checks, jobs=merged.jobs, schedules=merged.schedules,
                          sensors=merged.sensors, resources=merged.resources, executor=merged.executor,
                          loggers=merged.loggers, metadata=merged.metadata)


take_secrets()  # before any agent's code is imported: the keys leave os.environ (trading/secrets.py)
defs = build_location(Settings.load())
