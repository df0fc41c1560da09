"""Price one agent output with the reward configuration: the one place a run's reward is decided."""

from __future__ import annotations

from typing import Any

from agent_pipeline.reward.capital import capital_weighted_reward
from agent_pipeline.reward.config import RewardConfig


def proposes_trade(output: Any) -> bool:
    """True when the output's first item states a profit; observations (watchers, no opportunity) do not."""
    return bool(output) and isinstance(output, list) and isinstance(output[0], dict) and "profit_pct" in output[0]


def score_output(agent: str, strategy: str | None, output: Any, config: RewardConfig) -> tuple[float, float, float]:
    """Return ``(reward, capital_usd, max_loss_usd)`` for an output under its strategy's risk budget.

    An output that proposes no trade risks nothing and scores 0.0 (the seed would charge it the friction of a
    trade it never makes, penalising watchers for watching).
    """
    budget = config.budget_for(strategy)
    if not proposes_trade(output):
        return 0.0, budget.capital_usd, budget.max_loss_usd
    reward = capital_weighted_reward(
        agent, output,
        capital_usd=budget.capital_usd, max_loss_usd=budget.max_loss_usd,
        fill_prob=config.fill_prob, slippage_bps=config.slippage_bps, fees_bps=config.fees_bps,
    )
    return reward, budget.capital_usd, budget.max_loss_usd
