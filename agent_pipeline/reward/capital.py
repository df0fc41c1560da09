"""The seed's capital-weighted reward: expected value per unit of risk for acting on a signal.

score = fill_prob * (capital * profit_pct/100 - capital * (slippage_bps + fees_bps)/10_000) / max(max_loss, 1)

Worked example: capital 25,000, max loss 300, profit_pct 0.50 -> gross EV 125, friction 17.5,
EV 0.7 * 107.5 = 75.25, score 75.25 / 300 = 0.25083.
"""

from __future__ import annotations

import math
from typing import Any

from agent_pipeline.numbers import finite_number


def _finite(name: str, value: Any, *, low: float | None = None, high: float | None = None) -> float:
    number = finite_number(value)
    if number is None:
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if low is not None and number < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    if high is not None and number > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return number


def profit_pct_of(output: Any) -> float | None:
    """The seed's ``output[0]["profit_pct"]`` as a finite float, or None when the output cannot be used."""
    if not output or not isinstance(output, list) or not output[0]:
        return None
    first = output[0]
    if not isinstance(first, dict):
        return None
    raw = first.get("profit_pct", 0.0)
    if isinstance(raw, bool):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def capital_weighted_reward(
    agent: str,
    output: Any,
    *,
    capital_usd: float,
    max_loss_usd: float,
    fill_prob: float = 0.7,
    slippage_bps: float = 5.0,
    fees_bps: float = 2.0,
) -> float:
    """Return a scalar where >0 is good: risk-adjusted EV of acting on ``output[0]["profit_pct"]`` (a percent).

    Unusable output (empty, not a list of dicts, non-numeric or non-finite profit) scores 0.0 as in the seed;
    invalid parameters raise ValueError. Never returns NaN or inf.
    """
    capital = _finite("capital_usd", capital_usd, low=0.0)
    max_loss = _finite("max_loss_usd", max_loss_usd, low=0.0)
    fill = _finite("fill_prob", fill_prob, low=0.0, high=1.0)
    slippage = _finite("slippage_bps", slippage_bps, low=0.0)
    fees = _finite("fees_bps", fees_bps, low=0.0)

    profit_pct = profit_pct_of(output)
    if profit_pct is None:
        return 0.0
    gross_ev = capital * profit_pct / 100.0
    friction = capital * (slippage + fees) / 10_000.0
    ev = fill * (gross_ev - friction)
    score = ev / max(max_loss, 1.0)
    return score if math.isfinite(score) else 0.0
