"""Guardrail and execution configuration, validated strictly at construction.

``GuardrailConfig`` keeps the prototype's fields and defaults and adds the checks a real risk engine has. Limits are
positive and finite or the config does not build; there is no "0 means disabled". A check beyond the prototype's is
off while its limit is ``None`` and, once set, requires the signal fields it reads (a missing field is a denial).

Two layers of defaults:

- the bare code default ``GuardrailConfig()`` keeps the prototype's behaviour: a signal with exactly its six keys
  is approved, no exposure limit applies, no approvals are needed;
- the pipeline (the settings loaded from config.toml, and every ``ExecutionLayer``, even one built without a
  config) fills each exposure limit left unset with ``SAFE_DEFAULTS`` (orders per run, leverage, rolling turnover
  per strategy, order rates, share of the book), and the loaded settings turn the two-person rule on. Users loosen
  a limit by setting a larger value in ``[guardrails]``; it cannot be switched off.

The measured-market thresholds (``max_limit_distance_bps`` and the ``claim_*`` tolerances) apply only to orders
that carry market facts measured by the execution layer (``agent_pipeline.trading.market_facts``).

Configuration file (``$AGENT_PIPELINE_HOME/config.toml``)::

    [guardrails]              # GuardrailConfig; unknown keys fail, naming the closest valid key
    max_order_notional_usd = 5000
    min_confidence = 0.3
    max_orders_per_run = 20   # loosen a safe default
    trip_on = ["PRICE_COLLAR", "CHECK_ERROR"]   # denials that also trip the kill switch

    [execution]               # ExecutionConfig: sizing and the paper broker
    default_capital_usd = 10000
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from agent_pipeline.config_fields import BOOL, INT, NUMBER, TEXTS, ConfigTable, setting
from agent_pipeline.reward.config import CollapseConfig
from agent_pipeline.trading.reasons import CODES

APPROVAL_KEY_ENV = "AGENT_PIPELINE_APPROVAL_KEY"

DAY_S = 86_400.0
MAX_WINDOW_S = 30 * DAY_S  # the longest look-back a window or baseline may have
TRIP_CODES = tuple(sorted(CODES - {"OK"}))


# The kinds a guardrail takes: a positive limit (there is no "0 means off"), a share in (0, 1], a count >= 1, any
# finite threshold (a reward floor may be negative), a switch, a list of reason codes.
_POS, _FRACTION, _INT, _FINITE, _BOOL, _CODES = "positive", "fraction", "count", "finite", "bool", "codes"
_RULES = {_POS: {"kind": NUMBER, "gt": 0}, _FRACTION: {"kind": NUMBER, "gt": 0, "le": 1}, _INT: {"kind": INT, "ge": 1},
          _FINITE: {"kind": NUMBER}, _BOOL: {"kind": BOOL}, _CODES: {"kind": TEXTS, "choices": TRIP_CODES}}


def _f(default: Any, kind: str, *, optional: bool = False, doc: str = "", le: float | None = None) -> Any:
    return setting(default, optional=optional, doc=doc, **_RULES[kind], **({"le": le} if le is not None else {}))


_COLLAPSE = ("reward collapse has one definition, [reward.collapse] (min_runs, drop_std, min_drop, floor), "
             "judged per agent on the last hour against the last week; the breaker applies it with "
             "breaker_on_reward_collapse = true")


@dataclass(frozen=True)
class GuardrailConfig(ConfigTable):
    SECTION = "[guardrails]"
    RETIRED = {
        "reward_floor": f"set [reward.collapse] floor instead ({_COLLAPSE})",
        "max_reward_drop": f"set [reward.collapse] min_drop instead ({_COLLAPSE})",
        "min_reward_samples": f"set [reward.collapse] min_runs instead ({_COLLAPSE})",
        "reward_window_sec": f"the recent window is fixed at 1h ({_COLLAPSE})",
        "reward_baseline_sec": f"the baseline window is fixed at 7d ({_COLLAPSE})",
    }

    # -- the prototype's fields and defaults --------------------------------------------------------------------
    paper_only: bool = _f(True, _BOOL, doc="deny any signal whose `paper` is not true")
    max_order_notional_usd: float = _f(10_000, _POS, doc="largest `notional_usd` of one order")
    max_daily_loss_usd: float = _f(500, _POS, doc="realised losses of the UTC trading date; a breach trips")
    min_expected_edge_bps: float = _f(10.0, _FINITE, doc="smallest `expected_edge_bps` worth trading")
    max_spread_bps: float = _f(15.0, _POS, doc="widest spread (claimed and measured) to trade into")
    max_slippage_bps: float = _f(20.0, _POS, doc="largest expected slippage")
    max_staleness_sec: float = _f(30, _POS, le=DAY_S, doc="oldest market data an order may rest on")
    max_error_rate_5m: float = _f(0.10, _FRACTION, doc="circuit breaker: share of failed runs")
    # -- checks beyond the prototype: None = not configured ----------------------------------------------------
    min_confidence: float | None = _f(None, _FRACTION, optional=True, doc="needs `confidence` in [0, 1]")
    max_quote_fraction: float | None = _f(None, _FRACTION, optional=True,
                                          doc="liquidity: needs `size` and `quote_size`")
    max_price_deviation_bps: float | None = _f(None, _POS, optional=True,
                                               doc="price collar: needs `price` and `reference_price`")
    max_leverage: float | None = _f(None, _POS, optional=True,
                                    doc="gross exposure / capital; needs `capital_usd`, `strategy`, `symbol`")
    max_orders_per_window: int | None = _f(None, _INT, optional=True, doc="global order rate limit")
    max_orders_per_window_per_strategy: int | None = _f(None, _INT, optional=True, doc="needs `strategy`")
    rate_window_sec: float = _f(60, _POS, le=DAY_S, doc="window of the order rate limits")
    max_rolling_notional_usd: float | None = _f(None, _POS, optional=True,
                                                doc="sum of accepted notional over the rolling window, all strategies")
    max_strategy_turnover: float | None = _f(None, _POS, optional=True,
                                             doc="per strategy: accepted notional over the rolling window as a "
                                                 "multiple of `capital_usd`; needs `strategy`, `capital_usd`")
    rolling_notional_window_sec: float = _f(3_600, _POS, le=MAX_WINDOW_S,
                                             doc="window of the rolling notional and turnover limits")
    max_orders_per_run: int | None = _f(None, _INT, optional=True,
                                        doc="accepted orders per agent run; needs `event_id` (the run's event)")
    max_notional_mismatch_bps: float = _f(100.0, _POS, doc="`notional_usd` and `size` x `price` must agree "
                                                           "within this, when both are present")
    # -- the measured market: only for orders carrying market facts measured by the execution layer ----------
    max_limit_distance_bps: float = _f(50.0, _POS, doc="the order's limit this far from the price it would fill "
                                                       "at (either way) is refused")
    claim_spread_tolerance_bps: float = _f(10.0, _POS, doc="a claimed spread may understate the measured one by "
                                                           "this much")
    claim_slippage_tolerance_bps: float = _f(20.0, _POS, doc="a claimed slippage may understate the expected one "
                                                             "by this much")
    claim_age_tolerance_sec: float = _f(15.0, _POS, le=DAY_S, doc="a claimed data age may be this much younger "
                                                                  "than the quote's measured age")
    claim_reference_tolerance_bps: float = _f(150.0, _POS, doc="a claimed reference price (or bid/ask) may be "
                                                               "this far from the measured mids")
    require_order_key: bool = _f(False, _BOOL, doc="deny signals without `order_key` (duplicate protection)")
    require_approval: bool = _f(False, _BOOL, doc="two-person rule: needs `strategy_hash` and `approvals`")
    approval_exempt_builtins: bool = _f(True, _BOOL,
                                        doc="the stock built-in agents (unchanged) need no approval")
    trip_on: tuple[str, ...] = _f((), _CODES, doc="reason codes whose denial also trips the kill switch")
    # -- circuit breaker (sensor and gate) ----------------------------------------------------------------
    breaker_in_gate: bool = _f(True, _BOOL, doc="the gate itself denies while the store shows a breach")
    error_window_sec: float = _f(300, _POS, le=DAY_S, doc="window of the error-rate breaker")
    min_events_for_error_rate: int = _f(5, _INT, doc="live runs in the window before the rate is judged")
    min_errors_for_error_rate: int = _f(3, _INT, doc="failed runs in the window before the rate can breach "
                                                     "(one fault among a handful of runs is noise)")
    breaker_per_agent: bool = _f(True, _BOOL, doc="judge each agent's error rate alone as well as all together")
    breaker_on_reward_collapse: bool = _f(False, _BOOL, doc="an agent's reward collapse ([reward.collapse], on "
                                                            "the live runs' own rewards) trips as well")
    breaker_consecutive_ticks: int = _f(2, _INT, doc="breaching sensor ticks in a row before a trip")
    # not a key of [guardrails]: the one collapse rule's parameters, handed in from [reward.collapse] at load
    reward_collapse: CollapseConfig = dataclasses.field(default_factory=CollapseConfig)

    def check(self, where: str) -> None:
        if not isinstance(self.reward_collapse, CollapseConfig):
            raise self.ERROR(f"{where} reward_collapse must be a CollapseConfig ([reward.collapse]), "
                             f"got {self.reward_collapse!r}")

    def with_safe_defaults(self) -> GuardrailConfig:
        """This config with every exposure limit it leaves unset filled from ``SAFE_DEFAULTS``."""
        unset = {name: value for name, value in SAFE_DEFAULTS.items() if getattr(self, name) is None}
        return dataclasses.replace(self, **unset) if unset else self


# The limits the pipeline applies when [guardrails] leaves them unset (README "Trading safety" says what each
# protects against). Chosen so the built-in agents trade as usual at the default cadence (about one run per agent
# per minute, 10,000 USD of capital each before the allocator decides) while a run that proposes 60 orders, or
# a strategy that turns its capital over again and again, is stopped.
SAFE_DEFAULTS: dict[str, Any] = {
    "max_orders_per_run": 10,                   # a runaway or hostile output places at most this many orders
    "max_leverage": 1.0,                        # gross exposure per strategy at most its capital
    "max_strategy_turnover": 20.0,              # per strategy, notional per rolling hour at most 20x its capital
    "max_orders_per_window_per_strategy": 20,   # per strategy, orders per rate_window_sec (60 s)
    "max_orders_per_window": 60,                # all strategies together, orders per rate_window_sec (60 s)
    "max_quote_fraction": 1.0,                  # never more than the size quoted at the touch
}


@dataclass(frozen=True)
class ExecutionConfig(ConfigTable):
    """How signals become orders and how the paper broker fills them (``[execution]``).

    Orders are sized by the allocator's capital for the agent (latest ``allocator_quotas`` period) and, before the
    allocator has decided anything, by ``default_capital_usd``: an order's notional is the agent's proposal capped
    at ``max_order_fraction`` of that capital. The size comes from the book the paper broker fills against (touch
    plus ``base_slippage_bps + impact_bps_per_quote x size / touch size``), never from the agent's price: every
    leg's size x fill price stays within the notional (to 1e-9, float rounding).
    """

    SECTION = "[execution]"

    default_capital_usd: float = setting(10_000.0, NUMBER, gt=0, doc="capital per agent before the allocator decides")
    max_order_fraction: float = setting(0.25, NUMBER, gt=0, le=1, doc="an order's notional at most this share of it")
    default_fee_bps: float = setting(6.0, NUMBER, ge=0, le=10_000,
                                     doc="when the market source does not know the venue's fee")
    base_slippage_bps: float = setting(1.0, NUMBER, ge=0, le=10_000, doc="paper fills pay this plus the impact term")
    impact_bps_per_quote: float = setting(10.0, NUMBER, ge=0, le=10_000,
                                          doc="extra bps per unit of size / quoted size")
    max_fill_deviation_bps: float = setting(50.0, NUMBER, gt=0,
                                            doc="a fill this much worse than the order's price is refused")
    lock_timeout_s: float = setting(30.0, NUMBER, gt=0, le=600, doc="how long the gate waits for the store lock")
    allocation_grace_sec: float = setting(300.0, NUMBER, gt=0, le=DAY_S,
                                          doc="after the allocation period in force ends with no newer decision, "
                                              "orders are denied (ALLOCATION_STALE) once this has passed")
