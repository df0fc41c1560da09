"""The prototype's capital-weighted reward: EV per unit of risk for acting on a signal, net of the run's cost.

score = (fill_prob * (capital * profit_pct/100 - capital * (slippage_bps + fees_bps)/10_000) - run_cost)
        / max(max_loss, 1)

Worked example: capital 25,000, max loss 300, profit_pct 0.50 -> gross EV 125, friction 17.5,
EV 0.7 * 107.5 = 75.25, score 75.25 / 300 = 0.25083; with a run cost of 0.75 USD, (75.25 - 0.75) / 300 = 0.24833.

The run's cost (model calls, compute) is subtracted after the fill probability: it was paid whether or not the
trade fills, while slippage and fees are paid only on a fill. An output that cannot be used earns nothing and
still cost its run: it scores ``-run_cost / max(max_loss, 1)``, which is the prototype's 0.0 when the cost is 0.
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
    """The prototype's ``output[0]["profit_pct"]`` as a finite float, or None when the output cannot be used."""
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
    run_cost_usd: float = 0.0,
) -> float:
    """Return a scalar where >0 is good: risk-adjusted EV of acting on ``output[0]["profit_pct"]`` (a percent),
    less what the run itself cost (``run_cost_usd``; the default 0.0 gives the prototype's numbers).

    Unusable output (empty, not a list of dicts, non-numeric or non-finite profit) earns nothing: 0.0 as in the
    prototype, less the run's cost. Invalid parameters (negative, NaN, infinite, not a number) raise ValueError.
    Never returns NaN or inf.
    """
    capital = _finite("capital_usd", capital_usd, low=0.0)
    max_loss = _finite("max_loss_usd", max_loss_usd, low=0.0)
    fill = _finite("fill_prob", fill_prob, low=0.0, high=1.0)
    slippage = _finite("slippage_bps", slippage_bps, low=0.0)
    fees = _finite("fees_bps", fees_bps, low=0.0)
    cost = _finite("run_cost_usd", run_cost_usd, low=0.0)

    profit_pct = profit_pct_of(output)
    if profit_pct is None:
        return run_cost_charge(cost, max_loss)
    gross_ev = capital * profit_pct / 100.0
    friction = capital * (slippage + fees) / 10_000.0
    ev = fill * (gross_ev - friction) - cost
    score = ev / max(max_loss, 1.0)
    return score if math.isfinite(score) else run_cost_charge(cost, max_loss)


def run_cost_charge(run_cost_usd: float, max_loss_usd: float) -> float:
    """The reward of a run that earned nothing but cost ``run_cost_usd``: its cost per unit of risk, negated.

    Both arguments are validated finite and >= 0, and the divisor is at least 1, so the result is finite.
    """
    return 0.0 - run_cost_usd / max(max_loss_usd, 1.0)
