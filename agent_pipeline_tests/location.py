"""Definitions built the way agent_pipeline.definitions builds them, from this test's AGENT_PIPELINE_HOME and
config.toml (each call loads the settings again, so a test can write config.toml first)."""

import dagster as dg

from agent_pipeline.agents import build_registry
from agent_pipeline.defs.resources import shared_resources
from agent_pipeline.pipeline_settings import Settings


def loaded():
    """(settings, registry) as the code location loads them."""
    settings = Settings.load()
    return settings, build_registry(settings.agents)


def domain_defs(*domains, resources: bool = True) -> dg.Definitions:
    """The given ``agent_pipeline.defs`` domains, merged, with the shared resources bound (``resources``)."""
    settings, registry = loaded()
    parts = [domain.build_defs(settings, registry) for domain in domains]
    if resources:
        parts.append(dg.Definitions(resources=shared_resources(settings)))
    return dg.Definitions.merge(*parts)
