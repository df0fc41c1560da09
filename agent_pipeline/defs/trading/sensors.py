"""The circuit breaker: trips the persisted kill switch on an error-rate spike or a reward collapse.

Its thresholds are the ``[guardrails]`` the code location loaded (``build_circuit_breaker(settings.guardrails)``):
a config.toml that does not load fails the code location and every run process, so nothing trades on it.
"""

import json
from datetime import UTC, datetime

import dagster as dg

from agent_pipeline.defs.cursors import json_cursor
from agent_pipeline.defs.resources import KillSwitchResource, StoreResource
from agent_pipeline.defs.trading.assets import TRADING_SAFETY, snapshot_metadata
from agent_pipeline.store import StoreBusy
from agent_pipeline.trading.breaker import read_breaker
from agent_pipeline.trading.config import GuardrailConfig
from agent_pipeline.trading.kill_switch import KillSwitchState
from agent_pipeline.trading.report import snapshot

SENSOR_NAME = "circuit_breaker"
INTERVAL_SECONDS = 20
READ_TIMEOUT_S = 2.0


def _short(value) -> str:
    """A mean as a person reads it (4 significant digits), or n/a."""
    return "n/a" if value is None else f"{value:.4g}"


def build_circuit_breaker(cfg: GuardrailConfig) -> dg.SensorDefinition:
    """The ``circuit_breaker`` sensor judging the store with ``cfg``'s breaker thresholds."""

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Reads the live runs in agent_events (read-only, bounded wait; imported history never "
                    "counts) every 20 s: at least min_errors_for_error_rate failed runs making an error rate above "
                    "max_error_rate_5m over the last 5 minutes (all agents together or any one agent), or (with "
                    "breaker_on_reward_collapse) an agent's reward collapse by the rule of [reward.collapse] on its "
                    "live runs' own rewards, for breaker_consecutive_ticks ticks "
                    "in a row trips the persisted kill switch with the measured numbers in its reason. Never clears "
                    "it. Every no-op tick says why in its skip reason.",
    )
    def circuit_breaker(context: dg.SensorEvaluationContext, store: StoreResource, kill_switch: KillSwitchResource):
        cursor = json_cursor(context.cursor)
        kill = kill_switch.switch()
        now = datetime.now(UTC)
        try:
            with store.store().connect(read_only=True, timeout_s=READ_TIMEOUT_S) as conn:
                reading = read_breaker(conn, cfg, now)
        except StoreBusy:
            return dg.SkipReason(f"store busy for more than {READ_TIMEOUT_S:g} s (writers active); breach count "
                                 f"kept at {cursor.get('consecutive', 0)}")
        except FileNotFoundError:
            return dg.SkipReason("no store yet: no agent has run")
        rate = "n/a" if reading.error_rate is None else f"{reading.error_rate:.2f}"
        numbers = (f"{reading.errors}/{reading.events} live runs failed in the last {cfg.error_window_sec:g} s "
                   f"(rate {rate}, limit {cfg.max_error_rate_5m:g} once at least {cfg.min_errors_for_error_rate} "
                   f"failed)")
        if cfg.breaker_on_reward_collapse:
            numbers += (f"; mean reward {_short(reading.reward_mean)} over {reading.reward_n} runs in the last hour, "
                        f"{_short(reading.baseline_mean)} over {reading.baseline_n} in the last week")
        if reading.events < cfg.min_events_for_error_rate:
            numbers += f" (too few runs to judge the error rate: fewer than {cfg.min_events_for_error_rate})"
        elif reading.errors < cfg.min_errors_for_error_rate:
            numbers += f" (too few failures to judge the error rate: fewer than {cfg.min_errors_for_error_rate})"
        if reading.errors or reading.breached:  # quiet while nothing fails; the skip reason has the numbers
            context.log.info(f"{'breach' if reading.breached else 'no breach'}: {numbers}")
        if not reading.breached:
            if cursor.get("consecutive"):
                return dg.SensorResult(skip_reason=f"no breach, breach count reset: {numbers}",
                                       cursor=json.dumps({"consecutive": 0}))
            return dg.SkipReason(f"no breach: {numbers}")
        consecutive = int(cursor.get("consecutive", 0)) + 1
        new_cursor = json.dumps({"consecutive": consecutive, "last_breach": reading.reason, "at": now.isoformat()})
        if consecutive < cfg.breaker_consecutive_ticks:
            return dg.SensorResult(skip_reason=f"breach {consecutive}/{cfg.breaker_consecutive_ticks} (not tripping "
                                               f"yet): {reading.reason}", cursor=new_cursor)
        status = kill.status()
        if status.state is KillSwitchState.HALTED:
            return dg.SensorResult(skip_reason=f"kill switch already HALTED ({status.reason}); breach persists: "
                                               f"{reading.reason}", cursor=new_cursor)
        reason = (f"circuit breaker: {reading.reason} for {consecutive} consecutive checks "
                  f"{INTERVAL_SECONDS} s apart")
        kill.trip(reason, by=SENSOR_NAME)
        context.log.error(f"kill switch tripped: {reason}")
        snap = snapshot(store.store(), kill, timeout_s=0.5)
        return dg.SensorResult(
            skip_reason=f"TRIPPED the kill switch: {reason}",
            cursor=new_cursor,
            asset_events=[dg.AssetMaterialization(asset_key=TRADING_SAFETY, description="circuit breaker tripped",
                                                  metadata={**snapshot_metadata(snap, kill.path), "breaker_reading":
                                                            dg.MetadataValue.json(reading.as_dict())})],
        )

    return circuit_breaker
