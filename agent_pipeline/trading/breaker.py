"""Circuit breaker: error-rate spikes and reward collapse, measured from ``agent_events``.

Read by the sensor (which trips the persisted kill switch after ``breaker_consecutive_ticks`` breaching ticks in
a row, and never clears it) and by the gate (which denies with ``CIRCUIT_BREAKER`` as soon as a breach is in the
store, before the next tick). Windows end at ``now``:

- error rate: failed runs / runs over the last ``error_window_sec`` (the seed's 5 minutes), once at least
  ``min_events_for_error_rate`` runs happened; breach above ``max_error_rate_5m``;
- reward floor: mean reward (successful runs) over the last ``reward_window_sec`` below ``reward_floor``;
- reward drop: the mean of the preceding ``reward_baseline_sec`` minus the recent mean above ``max_reward_drop``.
Reward checks need ``min_reward_samples`` rewards in each window they use.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from agent_pipeline.store import has_table
from agent_pipeline.trading.config import GuardrailConfig


@dataclass(frozen=True)
class BreakerReading:
    at: datetime
    events: int = 0
    errors: int = 0
    reward_n: int = 0
    reward_mean: float | None = None
    baseline_n: int = 0
    baseline_mean: float | None = None
    breaches: tuple[str, ...] = ()

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.events if self.events else None

    @property
    def breached(self) -> bool:
        return bool(self.breaches)

    @property
    def reason(self) -> str:
        return "; ".join(self.breaches)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        out["error_rate"] = self.error_rate
        out["breaches"] = list(self.breaches)
        return out


def evaluate(cfg: GuardrailConfig, at: datetime, *, events: int, errors: int, reward_n: int,
             reward_mean: float | None, baseline_n: int, baseline_mean: float | None) -> BreakerReading:
    """Which limits the measured numbers breach; the messages carry the numbers."""
    breaches = []
    if events >= cfg.min_events_for_error_rate and events > 0:
        rate = errors / events
        if rate > cfg.max_error_rate_5m:
            breaches.append(f"error rate {rate:.2f} ({errors}/{events} runs in the last {cfg.error_window_sec:g} s) "
                            f"above {cfg.max_error_rate_5m:g}")
    recent_ok = reward_n >= cfg.min_reward_samples and reward_mean is not None and math.isfinite(reward_mean)
    if cfg.reward_floor is not None and recent_ok and reward_mean < cfg.reward_floor:
        breaches.append(f"mean reward {reward_mean:.4g} over {reward_n} runs in the last {cfg.reward_window_sec:g} s "
                        f"below the floor {cfg.reward_floor:g}")
    base_ok = baseline_n >= cfg.min_reward_samples and baseline_mean is not None and math.isfinite(baseline_mean)
    if cfg.max_reward_drop is not None and recent_ok and base_ok and baseline_mean - reward_mean > cfg.max_reward_drop:
        breaches.append(f"mean reward fell {baseline_mean - reward_mean:.4g} (from baseline {baseline_mean:.4g} over "
                        f"{baseline_n} runs to {reward_mean:.4g} over {reward_n}) beyond {cfg.max_reward_drop:g}")
    return BreakerReading(at, events, errors, reward_n, reward_mean, baseline_n, baseline_mean, tuple(breaches))


_SQL = """
SELECT
    count(*) FILTER (WHERE started_at >= $err_start),
    count(*) FILTER (WHERE started_at >= $err_start AND error IS NOT NULL),
    count(reward) FILTER (WHERE started_at >= $rw_start),
    avg(reward) FILTER (WHERE started_at >= $rw_start),
    count(reward) FILTER (WHERE started_at < $rw_start),
    avg(reward) FILTER (WHERE started_at < $rw_start)
FROM agent_events
WHERE started_at >= $start AND started_at <= $now
"""


def read_breaker(conn, cfg: GuardrailConfig, now: datetime) -> BreakerReading:
    """Measure the windows with one aggregate query; no ``agent_events`` table means nothing to measure."""
    if not has_table(conn, "agent_events"):
        return BreakerReading(now)
    err_start = now - timedelta(seconds=cfg.error_window_sec)
    rw_start = now - timedelta(seconds=cfg.reward_window_sec)
    base_start = rw_start - timedelta(seconds=cfg.reward_baseline_sec)
    start = min(err_start, base_start)
    row = conn.execute(_SQL, {"err_start": err_start, "rw_start": rw_start, "start": start, "now": now}).fetchone()
    events, errors, rn, rmean, bn, bmean = row
    return evaluate(cfg, now, events=int(events or 0), errors=int(errors or 0), reward_n=int(rn or 0),
                    reward_mean=None if rmean is None else float(rmean), baseline_n=int(bn or 0),
                    baseline_mean=None if bmean is None else float(bmean))
