"""Per-agent reward memory and robust summaries of it.

Rewards are EV per unit of risk: they can be negative and heavy-tailed, so one freak fill must not decide a
period. Each summary winsorizes the agent's remembered rewards at quantiles of the agent's own window before
averaging (a Bernoulli's 0/1 survive untouched; a Student-t's outliers are clipped), and forgetting is explicit:
a window (``maxlen``) and an optional per-observation discount, counted on one clock shared by all agents so an
agent that stops running grows uncertain again and is re-explored.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from agent_pipeline.numbers import finite_number, real_number


def check_reward(agent: object, reward: object) -> float:
    if not isinstance(agent, str) or not agent:
        raise ValueError(f"observe: agent must be a non-empty string, got {agent!r}")
    value = real_number(reward)
    if value is None:
        raise ValueError(f"observe({agent!r}): reward must be a number, got {reward!r}")
    if finite_number(value) is None:
        raise ValueError(f"observe({agent!r}): reward must be finite, got {value!r} (drop failed runs, "
                         "whose reward is NULL, before observing)")
    return value


@dataclass(frozen=True)
class Summary:
    """What a policy knows about one agent: effective count, robust mean and spread, raw count."""

    n_eff: float
    mean: float
    std: float
    n: int


EMPTY = Summary(0.0, 0.0, 0.0, 0)


class RewardMemory:
    """Remembered ``(clock, reward)`` pairs per agent, bounded by ``window`` per agent."""

    def __init__(self, window: int):
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive integer, got {window!r}")
        self.window = window
        self.clock = 0
        self.steps: dict[str, deque[int]] = {}
        self.values: dict[str, deque[float]] = {}
        self.total: dict[str, int] = {}

    def add(self, agent: str, reward: float) -> None:
        if agent not in self.values:
            self.steps[agent] = deque(maxlen=self.window)
            self.values[agent] = deque(maxlen=self.window)
            self.total[agent] = 0
        self.clock += 1
        self.steps[agent].append(self.clock)
        self.values[agent].append(reward)
        self.total[agent] += 1

    def arrays(self, agent: str) -> tuple[np.ndarray, np.ndarray]:
        if agent not in self.values:
            return np.empty(0, dtype=np.int64), np.empty(0)
        return np.fromiter(self.steps[agent], np.int64), np.fromiter(self.values[agent], float)

    def since_last(self, agent: str) -> int:
        """Observations (of any agent) since this agent's latest remembered one; 0 if none is remembered."""
        steps = self.steps.get(agent)
        return self.clock - steps[-1] if steps else 0

    def drop_before(self, agent: str, keep_last: int) -> None:
        """Forget all but the last ``keep_last`` rewards of an agent (after a detected change)."""
        steps, values = self.steps[agent], self.values[agent]
        while len(values) > keep_last:
            steps.popleft()
            values.popleft()


def winsorize(values: np.ndarray, tail: float) -> np.ndarray:
    if tail <= 0 or values.size < 20:
        return values
    lo, hi = np.quantile(values, [tail, 1.0 - tail])
    return np.clip(values, lo, hi)


def summarize(steps: np.ndarray, values: np.ndarray, clock: int, *, discount: float = 1.0,
              tail: float = 0.0) -> Summary:
    """Discounted, winsorized mean and standard deviation of one agent's remembered rewards."""
    if values.size == 0:
        return EMPTY
    x = winsorize(values, tail)
    w = np.power(discount, (clock - steps).astype(float)) if discount < 1.0 else np.ones_like(x)
    n_eff = float(w.sum())
    if n_eff <= 0.0:
        return Summary(0.0, 0.0, 0.0, int(values.size))
    mean = float(np.dot(w, x) / n_eff)
    # identical rewards have no spread; the weighted formula would leave ~1e-18 of rounding, which pooled_scale
    # would then take for the typical spread and every posterior would collapse onto its mean
    var = float(np.dot(w, (x - mean) ** 2) / n_eff) if values.size > 1 and np.ptp(x) > 0 else 0.0
    return Summary(n_eff, mean, math.sqrt(max(var, 0.0)), int(values.size))


def pooled_scale(summaries: dict[str, Summary], default: float = 1.0) -> float:
    """A typical within-agent spread, used to scale exploration and as every agent's prior spread."""
    stds = [s.std for s in summaries.values() if s.n >= 2 and s.std > 0]
    if not stds:
        return default
    return float(np.median(stds))


def glr_change_point(values: np.ndarray, sigma: float, threshold: float, min_segment: int) -> int | None:
    """Bernoulli-free Gaussian GLR test for one change in mean; the index where the new segment starts.

    For every split s the statistic is ``s (n - s) / n * (mean_left - mean_right)^2 / (2 sigma^2)``; a change
    is declared when its maximum exceeds ``threshold`` (a log-scale bound that grows slowly with n, so the
    false-alarm rate stays controlled as the window fills).
    """
    n = values.size
    if n < 2 * min_segment or sigma <= 0:
        return None
    csum = np.cumsum(values)
    s = np.arange(min_segment, n - min_segment + 1)
    left = csum[s - 1] / s
    right = (csum[-1] - csum[s - 1]) / (n - s)
    stat = s * (n - s) / n * (left - right) ** 2 / (2.0 * sigma * sigma)
    best = int(np.argmax(stat))
    if stat[best] > threshold + 1.5 * math.log(n):
        return int(s[best])
    return None


def robust_sigma(values: np.ndarray) -> float:
    """Noise scale from successive differences (insensitive to the mean shifts being tested for)."""
    if values.size < 3:
        return 0.0
    d = np.abs(np.diff(values))
    mad = float(np.median(d)) / (0.6745 * math.sqrt(2.0))
    if mad > 0:
        return mad
    return float(np.std(d)) / math.sqrt(2.0)
