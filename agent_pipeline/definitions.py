"""The code location: merges each domain's definitions and binds the shared resources."""

from __future__ import annotations

import dagster as dg

from agent_pipeline.defs import agents
from agent_pipeline.defs import allocation as allocation_defs
from agent_pipeline.defs import housekeeping as housekeeping_defs
from agent_pipeline.defs import metrics as metrics_defs
from agent_pipeline.defs import rewards as rewards_defs
from agent_pipeline.defs import trading as trading_defs
from agent_pipeline.defs.resources import default_resources

defs = dg.Definitions.merge(
    agents.build_defs(),
    allocation_defs.build_defs(),
    housekeeping_defs.build_defs(),
    metrics_defs.build_defs(),
    rewards_defs.build_defs(),
    trading_defs.build_defs(),
    dg.Definitions(resources=default_resources()),
)
