"""The ``[metrics]`` table, the environment variables of the Pushgateway, and the configured thresholds the alert
rules compare with.

    [metrics]
    gateway_url = "http://127.0.0.1:9091"   # $AGENT_PIPELINE_PUSHGATEWAY_URL, when set, wins
    job = "agent_pipeline"
    timeout_s = 5.0            # HTTP timeout of one push
    store_timeout_s = 10.0     # wait for the store lock, else skip (the next push catches up)
    lock_timeout_s = 30.0      # wait for another publisher's push lock, else skip

The variables are named here once; the edges (``Settings.load``, the Dagster resource, the CLI) read them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from agent_pipeline.config_fields import INT, NUMBER, TEXT, URL, ConfigTable, setting
from agent_pipeline.metrics.collector import DEFAULT_STORE_TIMEOUT_S
from agent_pipeline.metrics.spec import DEFAULT_JOB

GATEWAY_ENV = "AGENT_PIPELINE_PUSHGATEWAY_URL"
USERNAME_ENV = "AGENT_PIPELINE_PUSHGATEWAY_USERNAME"
PASSWORD_ENV = "AGENT_PIPELINE_PUSHGATEWAY_PASSWORD"
DEFAULT_GATEWAY = "http://127.0.0.1:9091"
MAX_WAIT_S = 600.0


@dataclass(frozen=True)
class MetricsConfig(ConfigTable):
    """Where and how the store-computed metrics are pushed. ``$AGENT_PIPELINE_PUSHGATEWAY_URL`` overrides
    ``gateway_url`` when the settings are loaded."""

    SECTION = "[metrics]"

    gateway_url: str = setting(DEFAULT_GATEWAY, URL, doc="Pushgateway base URL")
    job: str = setting(DEFAULT_JOB, TEXT, min_items=1, doc="job label of the one group every publish replaces")
    timeout_s: float = setting(5.0, NUMBER, gt=0, le=MAX_WAIT_S, doc="HTTP timeout of one push (seconds)")
    store_timeout_s: float = setting(DEFAULT_STORE_TIMEOUT_S, NUMBER, gt=0, le=MAX_WAIT_S,
                                     doc="wait for the store lock before skipping a push (seconds)")
    lock_timeout_s: float = setting(30.0, NUMBER, gt=0, le=MAX_WAIT_S,
                                    doc="wait for another publisher's push lock before skipping (seconds)")


def gateway_credentials(environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """(username, password) from the environment; (None, None) when no username is set."""
    env = os.environ if environ is None else environ
    username = env.get(USERNAME_ENV) or None
    if username is None:
        return None, None
    return username, env.get(PASSWORD_ENV) or None


@dataclass(frozen=True)
class AlertInputs(ConfigTable):
    """What the alert rules compare measured series with, exported beside them from the pipeline's own settings:
    the reward-collapse rule's parameters (``[reward.collapse]``, the table the Dagster check and the breaker read)
    and the allocation period (the expected run interval of an agent is the period over its quota)."""

    SECTION = "alert inputs"

    collapse_min_runs: int = setting(kind=INT, ge=1, doc="[reward.collapse] min_runs")
    collapse_drop_std: float = setting(kind=NUMBER, gt=0, doc="[reward.collapse] drop_std")
    collapse_min_drop: float = setting(kind=NUMBER, gt=0, doc="[reward.collapse] min_drop")
    period_minutes: int = setting(kind=INT, ge=1, doc="[allocation] period_minutes")
    collapse_floor: float | None = setting(None, NUMBER, optional=True, doc="[reward.collapse] floor")
