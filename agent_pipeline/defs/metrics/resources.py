"""The Pushgateway resource: where and how the store-computed metrics are published."""

import logging
import os
from typing import Optional

import dagster as dg
from pydantic import Field

from agent_pipeline.metrics.publish import GATEWAY_ENV, MetricsConfig, PushResult, publish

PASSWORD_ENV = "AGENT_PIPELINE_PUSHGATEWAY_PASSWORD"
USERNAME_ENV = "AGENT_PIPELINE_PUSHGATEWAY_USERNAME"


class PushgatewayResource(dg.ConfigurableResource):
    """PUTs the metrics snapshot computed from the store to one fixed Pushgateway group (job=<job>).

    Never raises for a gateway that is down or slow: the failure is logged and counted, and the next publish
    catches up. Unset fields fall back to config.toml's [metrics] table (and $AGENT_PIPELINE_PUSHGATEWAY_URL).
    """

    url: Optional[str] = Field(default=None, description="Pushgateway base URL, e.g. http://127.0.0.1:9091.")
    job: Optional[str] = Field(default=None, description="The job label of the one group every publish replaces.")
    timeout_s: Optional[float] = Field(default=None, gt=0, description="HTTP timeout of one push (seconds).")
    store_timeout_s: Optional[float] = Field(default=None, gt=0,
                                             description="How long to wait for the store lock before skipping.")
    username: Optional[str] = Field(default=None, description="Basic-auth user (set through EnvVar).")
    password: Optional[str] = Field(default=None, description="Basic-auth password (set through EnvVar).")

    def config(self) -> MetricsConfig:
        base = MetricsConfig.load()
        return MetricsConfig(gateway_url=self.url or base.gateway_url, job=self.job or base.job,
                             timeout_s=self.timeout_s or base.timeout_s,
                             store_timeout_s=self.store_timeout_s or base.store_timeout_s,
                             lock_timeout_s=base.lock_timeout_s)

    def publish(self, logger: Optional[logging.Logger] = None) -> PushResult:
        cfg = self.config()
        result = publish(cfg.gateway_url, job=cfg.job, timeout_s=cfg.timeout_s, username=self.username or None,
                         password=self.password or None, store_timeout_s=cfg.store_timeout_s,
                         lock_timeout_s=cfg.lock_timeout_s)
        if logger is not None and result.worth_logging:  # an outage is reported at its first failure only
            (logger.info if result.ok else logger.warning)(f"metrics publish {result.summary()}")
        return result


def default_pushgateway() -> PushgatewayResource:
    """URL from the environment when set at load time; basic auth through EnvVar only when configured, so an
    unset secret never breaks the sensor or the publish job."""
    return PushgatewayResource(
        url=os.environ.get(GATEWAY_ENV) or None,
        username=dg.EnvVar(USERNAME_ENV) if os.environ.get(USERNAME_ENV) else None,
        password=dg.EnvVar(PASSWORD_ENV) if os.environ.get(PASSWORD_ENV) else None,
    )
