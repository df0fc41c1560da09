"""The Pushgateway resource: where and how the store-computed metrics are published."""

import logging

import dagster as dg
from pydantic import Field

from agent_pipeline.defs.config_models import config_resource, table_model
from agent_pipeline.defs.resources import store_location_field
from agent_pipeline.metrics.config import PASSWORD_ENV, USERNAME_ENV, AlertInputs, MetricsConfig, gateway_credentials
from agent_pipeline.metrics.publish import PushResult, PushState, publish, read_state
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.store import Store


class PushgatewayResource(config_resource(MetricsConfig)):
    """PUTs the metrics snapshot computed from the store to one fixed Pushgateway group (job=<job>).

    Carries the ``[metrics]`` table's values (``$AGENT_PIPELINE_PUSHGATEWAY_URL`` applied when the settings were
    loaded), the state folder, and the configured thresholds exported beside the measured series. Never raises for
    a gateway that is down or slow: the failure is logged and counted, and the next publish catches up.
    """

    username: str | None = Field(default=None, description="Basic-auth user (set through EnvVar).")
    password: str | None = Field(default=None, description="Basic-auth password (set through EnvVar).")
    home: str = Field(default="", description="The state folder (push lock and state); empty: $AGENT_PIPELINE_HOME.")
    database: str = Field(default="", description="The store the metrics are computed from: a shared store's "
                                                  "postgresql:// URL (which also keeps the push lock and state); "
                                                  "empty: the DuckDB file in the state folder.")
    agents: list[str] = Field(default_factory=list, description="The registry's agents: their series exist (at 0) "
                                                                 "before their first live run.")
    alert_inputs: table_model(AlertInputs) | None = Field(
        default=None, description="Thresholds the alert rules compare with (none exported when unset).")

    def store(self) -> Store:
        return Store(self.database) if self.database else Store.at_home(self.home or None)

    def state(self) -> PushState:
        """What the publishers have done so far (the last snapshot pushed, failures), where they keep it."""
        return read_state(self.home or None, self.store())

    def publish(self, logger: logging.Logger | None = None) -> PushResult:
        expectations = AlertInputs.from_table(self.alert_inputs.model_dump()) if self.alert_inputs else None
        result = publish(self.config(), auth=(self.username or None, self.password or None), home=self.home or None,
                         store=self.store(), expectations=expectations, agents=self.agents)
        if logger is not None and result.worth_logging:  # an outage is reported at its first failure only
            (logger.info if result.ok else logger.warning)(f"metrics publish {result.summary()}")
        return result


def pushgateway_resource(settings: Settings) -> PushgatewayResource:
    """From the settings; basic auth through EnvVar only when configured, so an unset secret never breaks the
    sensor or the publish job, and the password never shows in the UI."""
    username, password = gateway_credentials()
    return PushgatewayResource.from_config(
        settings.metrics, home=str(settings.home), database=store_location_field(settings),
        alert_inputs=settings.alert_inputs().as_table(), agents=sorted(settings.agents.enabled()),
        username=dg.EnvVar(USERNAME_ENV) if username else None,
        password=dg.EnvVar(PASSWORD_ENV) if password else None,
    )
