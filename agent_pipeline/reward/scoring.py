"""Price one agent output with the reward configuration: the one place a run's reward is decided."""

from __future__ import annotations

from typing import Any

from agent_pipeline.reward.config import RewardConfig
from agent_pipeline.reward.formula import capital_weighted_reward


def proposes_trade(output: Any) -> bool:
    """True when the output's first item states a profit; observations (watchers, no opportunity) do not."""
    return bool(output) and isinstance(output, list) and isinstance(output[0], dict) and "profit_pct" in output[0]


def score_output(agent: str, strategy: str | None, output: Any, config: RewardConfig,
                 *, cost_usd: float | None = None) -> tuple[float, float, float]:
    """Return ``(reward, capital_usd, max_loss_usd)`` for an output under its strategy's risk budget.

    An output that proposes no trade risks nothing and earns nothing (the prototype would charge it the friction of a
    trade it never makes, penalising watchers for watching). With ``config.charge_run_cost`` the run's own
    ``cost_usd`` is subtracted either way: a run that proposes nothing still paid for its model calls, so it
    scores ``-cost_usd / max_loss_usd``. An unknown cost (None) charges nothing; a negative or non-finite one
    raises ValueError naming ``run_cost_usd``.
    """
    budget = config.budget_for(strategy)
    run_cost = cost_usd if config.charge_run_cost and cost_usd is not None else 0.0
    # an observation is priced as an output with nothing to act on: 0.0, less the run's cost
    priced = output if proposes_trade(output) else None
    reward = capital_weighted_reward(
        agent, priced,
        capital_usd=budget.capital_usd, max_loss_usd=budget.max_loss_usd,
        fill_prob=config.fill_prob, slippage_bps=config.slippage_bps, fees_bps=config.fees_bps,
        run_cost_usd=run_cost,
    )
    return reward, budget.capital_usd, budget.max_loss_usd
