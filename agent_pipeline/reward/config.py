"""Reward parameters and per-strategy risk budgets.

The seed scores every signal with one capital and max loss (25,000 / 300 for arbitrage) and suggests mapping
other signals "to a strategy risk budget": each strategy names the capital it would deploy and the loss it
accepts, and the same formula then prices any signal that states an expected profit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from agent_pipeline.numbers import finite_number
from agent_pipeline.settings import ConfigError, config_section, strict_fields


@dataclass(frozen=True)
class RiskBudget:
    capital_usd: float
    max_loss_usd: float

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if finite_number(value) is None or value <= 0:
                raise ConfigError(f"RiskBudget.{f.name} must be a positive finite number, got {value!r}")


@dataclass(frozen=True)
class RewardHistoryConfig:
    """How reward history is summarised and guarded (``[reward.history]``); not part of the price of a reward.

    ``history_start`` is the first day of the agent_rewards partitions; ``last_n_runs`` sizes the "last N runs"
    distribution window. Rewards outside ``[min_reward, max_reward]`` fail the plausibility check; no event for
    ``freshness_hours`` fails the freshness check. An agent's reward has collapsed when, over at least
    ``collapse_min_runs`` runs, its last-hour mean falls below its last-week mean by more than
    ``max(collapse_drop_std * std, collapse_min_drop)``.
    """

    history_start: str = "2024-01-01"
    last_n_runs: int = 100
    min_reward: float = -100.0
    max_reward: float = 100.0
    freshness_hours: float = 6.0
    collapse_min_runs: int = 20
    collapse_drop_std: float = 3.0
    collapse_min_drop: float = 0.1

    def __post_init__(self) -> None:
        from datetime import date

        try:
            date.fromisoformat(self.history_start)
        except (TypeError, ValueError):
            raise ConfigError(f"[reward.history].history_start must be a date YYYY-MM-DD, got {self.history_start!r}")
        for name in ("last_n_runs", "collapse_min_runs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"[reward.history].{name} must be a positive integer, got {value!r}")
        for name in ("min_reward", "max_reward", "freshness_hours", "collapse_drop_std", "collapse_min_drop"):
            value = getattr(self, name)
            if finite_number(value) is None:
                raise ConfigError(f"[reward.history].{name} must be a finite number, got {value!r}")
        if self.min_reward >= self.max_reward:
            raise ConfigError(f"[reward.history]: min_reward ({self.min_reward}) must be below max_reward "
                              f"({self.max_reward})")
        for name in ("freshness_hours", "collapse_drop_std", "collapse_min_drop"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"[reward.history].{name} must be positive, got {getattr(self, name)!r}")


DEFAULT_BUDGETS: dict[str, RiskBudget] = {
    "cross_venue_arb": RiskBudget(25_000.0, 300.0),
    "momentum": RiskBudget(10_000.0, 200.0),
}


@dataclass(frozen=True)
class RewardConfig:
    """Parameters of ``capital_weighted_reward`` plus the budgets per strategy; ``default_budget`` for the rest.

    ``charge_run_cost`` (default true): each run's own ``cost_usd`` is subtracted from its expected value, so an
    agent whose model calls cost more than its signals earn scores below zero; false gives the prototype's numbers.
    """

    fill_prob: float = 0.7
    slippage_bps: float = 5.0
    fees_bps: float = 2.0
    default_budget: RiskBudget = RiskBudget(25_000.0, 300.0)
    budgets: dict[str, RiskBudget] = field(default_factory=lambda: dict(DEFAULT_BUDGETS))
    history: RewardHistoryConfig = RewardHistoryConfig()
    charge_run_cost: bool = True

    def __post_init__(self) -> None:
        checks = {"fill_prob": (0.0, 1.0), "slippage_bps": (0.0, 10_000.0), "fees_bps": (0.0, 10_000.0)}
        for name, (low, high) in checks.items():
            value = getattr(self, name)
            if finite_number(value) is None or not low <= value <= high:
                raise ConfigError(f"RewardConfig.{name} must be a finite number in [{low}, {high}], got {value!r}")
        if not isinstance(self.charge_run_cost, bool):
            raise ConfigError(f"RewardConfig.charge_run_cost must be true or false, got {self.charge_run_cost!r}")

    def budget_for(self, strategy: str | None) -> RiskBudget:
        return self.budgets.get(strategy or "", self.default_budget)

    def as_dict(self) -> dict[str, Any]:
        return {
            "fill_prob": self.fill_prob, "slippage_bps": self.slippage_bps, "fees_bps": self.fees_bps,
            "charge_run_cost": self.charge_run_cost, "default_budget": vars(self.default_budget),
            "budgets": {k: vars(v) for k, v in sorted(self.budgets.items())},
        }

    @classmethod
    def from_mapping(cls, values: dict[str, Any], where: str = "[reward]") -> RewardConfig:
        values = dict(strict_fields(cls, values, where))

        def budget(raw: Any, name: str) -> RiskBudget:
            if isinstance(raw, RiskBudget):
                return raw
            if not isinstance(raw, dict):
                raise ConfigError(f"{where}.{name} must be a table with capital_usd and max_loss_usd")
            strict_fields(RiskBudget, raw, f"{where}.{name}")
            try:
                return RiskBudget(**raw)
            except TypeError as exc:
                raise ConfigError(f"{where}.{name}: {exc}") from exc

        if "default_budget" in values:
            values["default_budget"] = budget(values["default_budget"], "default_budget")
        if "history" in values:
            raw = values["history"]
            if isinstance(raw, dict):
                strict_fields(RewardHistoryConfig, raw, f"{where}.history")
                values["history"] = RewardHistoryConfig(**raw)
            elif not isinstance(raw, RewardHistoryConfig):
                raise ConfigError(f"{where}.history must be a table")
        if "budgets" in values:
            merged = dict(DEFAULT_BUDGETS)
            merged.update({k: budget(v, f"budgets.{k}") for k, v in values["budgets"].items()})
            values["budgets"] = merged
        return cls(**values)

    @classmethod
    def load(cls, home=None) -> RewardConfig:
        return cls.from_mapping(config_section("reward", home))
