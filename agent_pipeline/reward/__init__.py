"""How reward is computed: the prototype's capital-weighted formula and the risk budgets it is priced with."""

from agent_pipeline.reward.config import RewardConfig, RewardHistoryConfig, RiskBudget
from agent_pipeline.reward.formula import capital_weighted_reward, profit_pct_of
from agent_pipeline.reward.scoring import score_output

__all__ = ["RewardConfig", "RewardHistoryConfig", "RiskBudget", "capital_weighted_reward", "profit_pct_of",
           "score_output"]
