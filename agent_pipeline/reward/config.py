"""Reward parameters and per-strategy risk budgets.

The prototype scores every signal with one capital and max loss (25,000 / 300 for arbitrage) and suggests mapping
other signals "to a strategy risk budget": each strategy names the capital it would deploy and the loss it
accepts, and the same formula then prices any signal that states an expected profit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent_pipeline.config_fields import BOOL, DATE, INT, NESTED, NESTED_MAP, NUMBER, ConfigTable, setting


@dataclass(frozen=True)
class RiskBudget(ConfigTable):
    """Capital a strategy would deploy on a signal and the loss it accepts if the signal is wrong."""

    SECTION = "RiskBudget"

    capital_usd: float = setting(kind=NUMBER, gt=0, doc="capital the strategy would deploy on a signal")
    max_loss_usd: float = setting(kind=NUMBER, gt=0, doc="loss the strategy accepts if the signal is wrong")


@dataclass(frozen=True)
class CollapseConfig(ConfigTable):
    """When an agent's reward has collapsed (``[reward.collapse]``): the one rule of ``reward.collapse``.

    Over at least ``min_runs`` scored runs in each window, the last hour's mean below the last week's mean by more
    than ``max(drop_std x the week's std, min_drop)``; or, when ``floor`` is set, the last hour's mean below it.
    The Dagster check ``reward_collapse``, the circuit breaker (with ``[guardrails] breaker_on_reward_collapse``)
    and the alert rule's exported inputs all read this table.
    """

    SECTION = "[reward.collapse]"

    min_runs: int = setting(20, INT, ge=1, le=1_000_000, doc="scored runs each window needs before collapse is judged")
    drop_std: float = setting(3.0, NUMBER, gt=0, le=1_000, doc="drop, in the week's std, that collapses")
    min_drop: float = setting(0.1, NUMBER, gt=0, doc="smallest drop of the mean that counts as a collapse")
    floor: float | None = setting(None, NUMBER, optional=True,
                                  doc="a last-hour mean below this collapses, whatever the week's")


_MOVED = "reward collapse has one table, [reward.collapse]: set its {key} instead"


@dataclass(frozen=True)
class RewardHistoryConfig(ConfigTable):
    """How reward history is summarised and guarded (``[reward.history]``); not part of the price of a reward.

    ``history_start`` is the first day of the agent_rewards partitions (unset: the day of the first stored event,
    read when the code location loads); ``last_n_runs`` sizes the "last N runs"
    distribution window. Rewards outside ``[min_reward, max_reward]`` fail the plausibility check; no event for
    ``freshness_hours`` fails the freshness check. Reward collapse is ``[reward.collapse]``.
    """

    SECTION = "[reward.history]"
    RETIRED = {"collapse_min_runs": _MOVED.format(key="min_runs"),
               "collapse_drop_std": _MOVED.format(key="drop_std"),
               "collapse_min_drop": _MOVED.format(key="min_drop")}

    history_start: str | None = setting(None, DATE, optional=True,
                                        doc="first daily partition of agent_rewards (unset: the first stored "
                                            "event's day)")
    last_n_runs: int = setting(100, INT, ge=1, le=1_000_000, doc="size of the 'last N runs' window")
    min_reward: float = setting(-100.0, NUMBER, doc="lowest plausible reward")
    max_reward: float = setting(100.0, NUMBER, doc="highest plausible reward")
    freshness_hours: float = setting(6.0, NUMBER, gt=0, le=8_760, doc="max age of the newest event")

    def check(self, where: str) -> None:
        if self.min_reward >= self.max_reward:
            raise self.ERROR(f"{where} min_reward ({self.min_reward}) must be below max_reward ({self.max_reward})")


DEFAULT_BUDGETS: dict[str, RiskBudget] = {
    "cross_venue_arb": RiskBudget(25_000.0, 300.0),
    "momentum": RiskBudget(10_000.0, 200.0),
}


@dataclass(frozen=True)
class RewardConfig(ConfigTable):
    """Parameters of ``capital_weighted_reward`` plus the budgets per strategy; ``default_budget`` for the rest.

    ``charge_run_cost`` (default true): each run's own ``cost_usd`` is subtracted from its expected value, so an
    agent whose model calls cost more than its signals earn scores below zero; false gives the prototype's numbers.
    ``budgets`` from config.toml are merged over the built-in ones.
    """

    SECTION = "[reward]"

    fill_prob: float = setting(0.7, NUMBER, ge=0, le=1, doc="probability a signal is filled")
    slippage_bps: float = setting(5.0, NUMBER, ge=0, le=10_000, doc="expected slippage in basis points")
    fees_bps: float = setting(2.0, NUMBER, ge=0, le=10_000, doc="fees in basis points")
    default_budget: RiskBudget = setting(RiskBudget(25_000.0, 300.0), NESTED, table=RiskBudget,  # noqa: RUF009
                                         doc="budget of strategies without their own")
    budgets: dict[str, RiskBudget] = setting(kind=NESTED_MAP, factory=lambda: dict(DEFAULT_BUDGETS),  # noqa: RUF009
                                             table=RiskBudget, merge=True,
                                             doc="per-strategy risk budgets (merged over the built-in)")
    history: RewardHistoryConfig = setting(RewardHistoryConfig(), NESTED, table=RewardHistoryConfig,  # noqa: RUF009
                                           doc="partitions, windows and checks")
    collapse: CollapseConfig = setting(CollapseConfig(), NESTED, table=CollapseConfig,  # noqa: RUF009
                                       doc="when an agent's reward has collapsed")
    charge_run_cost: bool = setting(True, BOOL, doc="subtract each run's own cost_usd from its reward")

    def budget_for(self, strategy: str | None) -> RiskBudget:
        return self.budgets.get(strategy or "", self.default_budget)

    def as_dict(self) -> dict[str, Any]:
        return {
            "fill_prob": self.fill_prob, "slippage_bps": self.slippage_bps, "fees_bps": self.fees_bps,
            "charge_run_cost": self.charge_run_cost, "default_budget": vars(self.default_budget),
            "budgets": {k: vars(v) for k, v in sorted(self.budgets.items())},
        }
