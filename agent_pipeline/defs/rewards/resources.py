"""The reward configuration as a Dagster resource, so a parameter can be changed in the launchpad and backfilled.

Every field left unset falls back to ``$AGENT_PIPELINE_HOME/config.toml`` ``[reward]`` (then the defaults), so
config.toml stays the one place for standing settings and run config is the place for a one-off reprice.
"""


from typing import Any

import dagster as dg
from pydantic import Field, model_validator

from agent_pipeline.reward import RewardConfig, RewardHistoryConfig


class RiskBudgetOverride(dg.Config):
    """Capital deployed and loss accepted for one strategy."""

    capital_usd: float = Field(gt=0, description="Capital the strategy would deploy on a signal.")
    max_loss_usd: float = Field(gt=0, description="Loss the strategy accepts if the signal is wrong.")


_HISTORY_FIELDS = ("last_n_runs", "min_reward", "max_reward", "freshness_hours", "collapse_min_runs",
                   "collapse_drop_std", "collapse_min_drop")


class RewardConfigResource(dg.ConfigurableResource):
    """Reward parameters for recomputing history. Unset fields come from config.toml [reward], then defaults."""

    fill_prob: float | None = Field(default=None, ge=0, le=1, description="Probability a signal is filled.")
    slippage_bps: float | None = Field(default=None, ge=0, description="Expected slippage in basis points.")
    fees_bps: float | None = Field(default=None, ge=0, description="Fees in basis points.")
    charge_run_cost: bool | None = Field(default=None, description="Subtract each run's own cost_usd from its "
                                         "reward (false gives the prototype's numbers).")
    default_capital_usd: float | None = Field(default=None, gt=0,
                                              description="Capital for strategies without a budget.")
    default_max_loss_usd: float | None = Field(default=None, gt=0,
                                               description="Max loss for strategies without a budget.")
    budgets: dict[str, RiskBudgetOverride] | None = Field(
        default=None, description="Per-strategy risk budgets, merged over config.toml's.")
    last_n_runs: int | None = Field(default=None, ge=1, description="Size of the 'last N runs' window.")
    min_reward: float | None = Field(default=None, description="Lowest plausible reward.")
    max_reward: float | None = Field(default=None, description="Highest plausible reward.")
    freshness_hours: float | None = Field(default=None, gt=0, description="Max age of the newest event.")
    collapse_min_runs: int | None = Field(default=None, ge=1, description="Runs needed before collapse is judged.")
    collapse_drop_std: float | None = Field(default=None, gt=0,
                                            description="Drop in baseline std that counts as a collapse.")
    collapse_min_drop: float | None = Field(default=None, gt=0,
                                            description="Smallest absolute drop that counts as a collapse.")

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_fields(cls, data: Any) -> Any:
        # A misspelt keyword would otherwise be dropped silently and the default used.
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                raise ValueError(f"RewardConfigResource: unknown field(s) {unknown}; known: {sorted(cls.model_fields)}")
        return data

    def config(self) -> RewardConfig:
        base = RewardConfig.load()
        values = self.model_dump()
        priced = ("fill_prob", "slippage_bps", "fees_bps", "charge_run_cost")
        mapping: dict[str, Any] = {k: getattr(base, k) for k in priced}
        mapping.update({k: values[k] for k in priced if values[k] is not None})
        default = vars(base.default_budget).copy()
        if values["default_capital_usd"] is not None:
            default["capital_usd"] = values["default_capital_usd"]
        if values["default_max_loss_usd"] is not None:
            default["max_loss_usd"] = values["default_max_loss_usd"]
        mapping["default_budget"] = default
        budgets = {k: vars(v).copy() for k, v in base.budgets.items()}
        for name, budget in (values["budgets"] or {}).items():
            budgets[name] = dict(budget)
        mapping["budgets"] = budgets
        history = {k: getattr(base.history, k) for k in RewardHistoryConfig.__dataclass_fields__}
        history.update({k: values[k] for k in _HISTORY_FIELDS if values[k] is not None})
        mapping["history"] = history
        return RewardConfig.from_mapping(mapping, where="reward_config resource")
