"""The ``[allocation]`` table of config.toml, validated strictly (a misspelt key fails, never silently ignored).

    [allocation]
    policy = "glr_thompson"            # ucb | thompson | glr_thompson | uniform
    params = { discount = 0.998 }      # the policy's own parameters
    seed = 0                           # base seed; each period's seed is derived from it and the period start
    total_budget_runs = 60             # runs per period, across all agents: a ceiling, not a quota to spend
    value_floor = 0.0                  # runs beyond the minimums only to agents whose value for the slot exceeds
                                       # this (-inf: spend the whole budget, as the prototype did)
    period_minutes = 60
    watcher_min_runs = 4               # every watcher runs at least this often per period
    watcher_max_runs = 4               # and at most this often (default: its minimum; watchers earn no edge)
    execution_sensitive_max_runs = 20  # execution-sensitive agents are capped per period
    min_runs = { regime_watcher = 6 }  # per-agent overrides
    max_runs = { cross_venue_arb = 15 }
    max_runs_per_strategy = { momentum = 30 }
    total_capital_usd = 100000.0
    kelly_fraction = 0.25
    min_samples = 20
    max_capital_per_agent = 50000.0
    default_max_capital_per_strategy = 50000.0
    max_capital_per_strategy = { cross_venue_arb = 25000.0 }
    history_window = 500               # rewards per agent read per decision
    history_days = 30                  # ... from at most this far back
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from agent_pipeline.allocation.capital import CapitalPlan
from agent_pipeline.allocation.policies import DEFAULT_POLICY, BaseAllocator, check_value_floor, make_allocator
from agent_pipeline.config_fields import INT, INT_MAP, NUMBER, NUMBER_MAP, TABLE, TEXT, ConfigTable, setting

MAX_RUNS = 10_000  # per period: more runs than this in one period is a typo, not a plan


def _value_floor(value: Any) -> float | None:
    try:
        return check_value_floor(value)  # -inf is None: no floor
    except ValueError:
        raise ValueError(f"must be a number below +inf (-inf: spend the whole budget), got {value!r}") from None


@dataclass(frozen=True)
class AllocationConfig(ConfigTable):
    SECTION = "[allocation]"

    policy: str = setting(DEFAULT_POLICY, TEXT, doc="ucb | thompson | glr_thompson | glr_ucb | uniform")
    params: dict[str, Any] = setting(kind=TABLE, factory=dict, doc="the policy's own parameters")  # noqa: RUF009
    seed: int = setting(0, INT, ge=0, le=2**63 - 1, doc="base seed of randomised policies")
    total_budget_runs: int = setting(60, INT, ge=0, le=MAX_RUNS, doc="runs per period across agents (a ceiling)")
    value_floor: float | None = setting(0.0, NUMBER, optional=True, convert=_value_floor,
                                        doc="runs beyond the minimums only to agents worth more than this "
                                            "(-inf: spend the whole budget)")
    period_minutes: int = setting(60, INT, ge=1, le=1_440, doc="length of an allocation period")
    watcher_min_runs: int = setting(4, INT, ge=0, le=MAX_RUNS, doc="runs per period of every watcher, at least")
    watcher_max_runs: int | None = setting(None, INT, optional=True, ge=0, le=MAX_RUNS,
                                           doc="runs per period of a watcher, at most (default: its minimum)")
    execution_sensitive_max_runs: int = setting(20, INT, ge=0, le=MAX_RUNS,
                                                doc="runs per period of an execution-sensitive agent, at most")
    min_runs: dict[str, int] = setting(kind=INT_MAP, factory=dict, ge=0, le=MAX_RUNS,  # noqa: RUF009
                                       doc="per-agent minimums")
    max_runs: dict[str, int] = setting(kind=INT_MAP, factory=dict, ge=0, le=MAX_RUNS,  # noqa: RUF009
                                       doc="per-agent maximums")
    max_runs_per_strategy: dict[str, int] = setting(kind=INT_MAP, factory=dict, ge=0, le=MAX_RUNS,  # noqa: RUF009
                                                    doc="per-strategy maximums")
    total_capital_usd: float = setting(100_000.0, NUMBER, ge=0, doc="capital split across agents")
    kelly_fraction: float = setting(0.25, NUMBER, gt=0, le=1, doc="share of the Kelly stake deployed")
    min_samples: int = setting(20, INT, ge=2, le=1_000_000, doc="rewards before an agent's capital is sized")
    max_capital_per_agent: float | None = setting(None, NUMBER, optional=True, ge=0, doc="cap per agent")
    default_max_capital_per_strategy: float | None = setting(50_000.0, NUMBER, optional=True, ge=0,
                                                             doc="cap per strategy without its own")
    max_capital_per_strategy: dict[str, float] = setting(kind=NUMBER_MAP, factory=dict, ge=0,  # noqa: RUF009
                                                         doc="caps per strategy")
    history_window: int = setting(500, INT, ge=1, le=1_000_000, doc="rewards per agent read per decision")
    history_days: int = setting(30, INT, ge=1, le=3_650, doc="... from at most this far back")

    def check(self, where: str) -> None:
        if self.watcher_max_runs is not None and self.watcher_max_runs < self.watcher_min_runs:
            raise self.ERROR(f"{where} watcher_max_runs must be an integer >= watcher_min_runs "
                             f"({self.watcher_min_runs}), got {self.watcher_max_runs!r}")
        p = self.period_minutes
        if not (60 % p == 0 or (p % 60 == 0 and 24 % (p // 60) == 0)):
            raise self.ERROR(f"{where} period_minutes must divide an hour or be whole hours dividing a day "
                             f"(e.g. 15, 30, 60, 120), got {p}")
        try:
            self.allocator()
            self.capital_plan({})
        except ValueError as exc:
            raise self.ERROR(f"{where}: {exc}") from exc

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def policy_params(self, seed: int | None = None) -> dict[str, Any]:
        """The policy's parameters; a randomised policy also gets ``seed`` (default the base seed) unless its
        parameters name one."""
        from agent_pipeline.allocation.policies import POLICIES

        params = dict(self.params)
        if POLICIES.get(self.policy) is not None and POLICIES[self.policy].randomised:
            params.setdefault("seed", self.seed if seed is None else seed)
        return params

    def allocator(self, seed: int | None = None) -> BaseAllocator:
        return make_allocator(self.policy, **self.policy_params(seed))

    def bounds_for(self, agents: dict[str, tuple[str, str]]) -> tuple[dict[str, int], dict[str, int]]:
        """Per-agent (min, max) runs from kinds plus overrides; ``agents`` maps name -> (kind, strategy).

        Watchers run ``watcher_min_runs`` (or their ``min_runs`` override) and, unless ``watcher_max_runs`` or a
        ``max_runs`` override says otherwise, no more: a watcher's reward is no trading edge to compete with.
        """
        lo, hi = {}, {}
        for name, (kind, _strategy) in agents.items():
            if kind == "watcher":
                lo[name] = self.watcher_min_runs
        lo.update({k: v for k, v in self.min_runs.items() if k in agents})
        for name, (kind, _strategy) in agents.items():
            if kind == "watcher":
                hi[name] = lo[name] if self.watcher_max_runs is None else max(self.watcher_max_runs, lo[name])
            if kind == "execution-sensitive":
                hi[name] = self.execution_sensitive_max_runs
        hi.update({k: v for k, v in self.max_runs.items() if k in agents})
        return lo, hi

    def capital_plan(self, strategies: dict[str, str]) -> CapitalPlan:
        caps = {}
        if self.default_max_capital_per_strategy is not None:
            caps = {s: float(self.default_max_capital_per_strategy) for s in set(strategies.values())}
        caps.update({k: float(v) for k, v in self.max_capital_per_strategy.items()})
        return CapitalPlan(total_capital_usd=float(self.total_capital_usd), kelly_fraction=float(self.kelly_fraction),
                           min_samples=self.min_samples, max_capital_per_agent=self.max_capital_per_agent,
                           max_capital_per_strategy=caps)
