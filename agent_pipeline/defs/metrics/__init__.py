"""Dagster wiring for metrics: the Pushgateway resource, end-of-run sensors and the catch-up schedule."""

from collections.abc import Mapping

import dagster as dg

from agent_pipeline.agents import LoadedAgent
from agent_pipeline.defs.metrics.publishing import (
    publish_metrics_job,
    publish_metrics_schedule,
    publish_on_failure,
    publish_on_success,
)
from agent_pipeline.defs.metrics.resources import PushgatewayResource, pushgateway_resource
from agent_pipeline.pipeline_settings import Settings

__all__ = ["PushgatewayResource", "build_defs"]


def build_defs(settings: Settings, registry: Mapping[str, LoadedAgent]) -> dg.Definitions:
    return dg.Definitions(
        jobs=[publish_metrics_job],
        schedules=[publish_metrics_schedule],
        sensors=[publish_on_success, publish_on_failure],
        resources={"pushgateway": pushgateway_resource(settings)},
    )
