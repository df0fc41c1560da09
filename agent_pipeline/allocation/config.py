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

from dataclasses import dataclass, field, fields
from typing import Any

from agent_pipeline.allocation.capital import CapitalPlan
from agent_pipeline.allocation.policies import DEFAULT_POLICY, BaseAllocator, check_value_floor, make_allocator
from agent_pipeline.numbers import finite_number
from agent_pipeline.settings import ConfigError, config_section, strict_fields

_INTS = ("seed", "total_budget_runs", "period_minutes", "watcher_min_runs", "execution_sensitive_max_runs",
         "min_samples", "history_window", "history_days")
_FLOATS = ("total_capital_usd", "kelly_fraction", "max_capital_per_agent", "default_max_capital_per_strategy")


@dataclass(frozen=True)
class AllocationConfig:
    policy: str = DEFAULT_POLICY
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    total_budget_runs: int = 60
    value_floor: float | None = 0.0
    period_minutes: int = 60
    watcher_min_runs: int = 4
    watcher_max_runs: int | None = None
    execution_sensitive_max_runs: int = 20
    min_runs: dict[str, int] = field(default_factory=dict)
    max_runs: dict[str, int] = field(default_factory=dict)
    max_runs_per_strategy: dict[str, int] = field(default_factory=dict)
    total_capital_usd: float = 100_000.0
    kelly_fraction: float = 0.25
    min_samples: int = 20
    max_capital_per_agent: float | None = None
    default_max_capital_per_strategy: float | None = 50_000.0
    max_capital_per_strategy: dict[str, float] = field(default_factory=dict)
    history_window: int = 500
    history_days: int = 30

    def __post_init__(self) -> None:
        if self.watcher_max_runs is not None and (
                isinstance(self.watcher_max_runs, bool) or not isinstance(self.watcher_max_runs, int)
                or self.watcher_max_runs < self.watcher_min_runs):
            raise ConfigError(f"[allocation].watcher_max_runs must be an integer >= watcher_min_runs "
                              f"({self.watcher_min_runs}), got {self.watcher_max_runs!r}")
        for name in _INTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"[allocation].{name} must be a non-negative integer, got {value!r}")
        for name in ("period_minutes", "history_window", "history_days", "min_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"[allocation].{name} must be at least 1, got {getattr(self, name)!r}")
        p = self.period_minutes
        if not (60 % p == 0 or (p % 60 == 0 and 24 % (p // 60) == 0)):
            raise ConfigError(f"[allocation].period_minutes must divide an hour or be whole hours dividing a day "
                              f"(e.g. 15, 30, 60, 120), got {p}")
        for name in _FLOATS:
            value = getattr(self, name)
            if value is None and name in ("max_capital_per_agent", "default_max_capital_per_strategy"):
                continue
            if finite_number(value) is None or value < 0:
                raise ConfigError(f"[allocation].{name} must be a finite number >= 0, got {value!r}")
        for name in ("params", "min_runs", "max_runs", "max_runs_per_strategy", "max_capital_per_strategy"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"[allocation].{name} must be a table, got {getattr(self, name)!r}")
        for name in ("min_runs", "max_runs", "max_runs_per_strategy"):
            for key, value in getattr(self, name).items():
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ConfigError(f"[allocation].{name}.{key} must be a non-negative integer, got {value!r}")
        for key, value in self.max_capital_per_strategy.items():
            if finite_number(value) is None or value < 0:
                raise ConfigError(f"[allocation].max_capital_per_strategy.{key} must be a number >= 0, got {value!r}")
        try:
            object.__setattr__(self, "value_floor", check_value_floor(self.value_floor))  # -inf is None
        except ValueError as exc:
            raise ConfigError(f"[allocation].value_floor must be a number (-inf: spend the whole budget), "
                              f"got {self.value_floor!r}") from exc
        try:
            self.allocator()
            self.capital_plan({})
        except ValueError as exc:
            raise ConfigError(f"[allocation]: {exc}") from exc

    @classmethod
    def from_mapping(cls, values: dict[str, Any], where: str = "[allocation]") -> AllocationConfig:
        return cls(**strict_fields(cls, dict(values), where))

    @classmethod
    def load(cls, home=None, overrides: dict[str, Any] | None = None) -> AllocationConfig:
        """config.toml's [allocation], then ``overrides`` (e.g. Dagster run config) on top."""
        values = dict(config_section("allocation", home))
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_mapping(values)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def allocator(self, seed: int | None = None) -> BaseAllocator:
        from agent_pipeline.allocation.policies import POLICIES

        params = dict(self.params)
        if POLICIES.get(self.policy) is not None and POLICIES[self.policy].randomised:
            params.setdefault("seed", self.seed if seed is None else seed)
        return make_allocator(self.policy, **params)

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
