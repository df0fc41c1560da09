"""The pipeline's settings: every table of config.toml, read once at the edge and handed down as arguments.

``Settings.load()`` is called by ``agent_pipeline.definitions`` (once per code-location load), by the CLI's
``main`` and by benchmarks that want the user's configuration; nothing below them reads the file or the
environment for a setting. It reads ``$AGENT_PIPELINE_HOME/config.toml`` through the safe reader, rejects unknown
top-level keys naming the closest valid one (a ``[guardrail]`` table would otherwise leave every limit at its
default), checks every table with its own declaration, applies the environment variables the pipeline reads, and
applies the pipeline's own defaults where they differ from the bare code defaults:

- ``[guardrails]``: the two-person rule is on and every exposure limit left unset gets its safe default
  (``GuardrailConfig()`` alone keeps the prototype's behaviour);
- ``$AGENT_PIPELINE_PUSHGATEWAY_URL``, when set, wins over ``[metrics] gateway_url``;
- ``$AGENT_PIPELINE_STORE_URL``, when set, wins over ``[store] url`` (the store's location: ``store_location``).

Keys that name an agent (``AGENT_KEYED``: ``[allocation] min_runs`` and ``max_runs``, ``[tick]
agent_concurrency_overrides``) must name a registered
agent (enabled or not): a misspelt name would leave that agent at its default without a word.

Domain packages never import this module (a test checks it): they take the config objects as arguments.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from agent_pipeline.agents.config import AgentsConfig, AgentSpec
from agent_pipeline.allocation.config import AllocationConfig
from agent_pipeline.allocation.tick_config import TickConfig
from agent_pipeline.config_fields import NESTED, NESTED_MAP, ConfigTable, closest, reject_unknown, rules
from agent_pipeline.market.config import MarketConfig
from agent_pipeline.metrics.config import GATEWAY_ENV, AlertInputs, MetricsConfig
from agent_pipeline.reward.config import RewardConfig
from agent_pipeline.settings import CONFIG_FILE, ConfigError, load_config, pipeline_home
from agent_pipeline.store import DB_FILE
from agent_pipeline.store.config import STORE_URL_ENV, StoreConfig
from agent_pipeline.store.importer import OLDEST_ACCEPTED
from agent_pipeline.trading.config import ExecutionConfig, GuardrailConfig
from agent_pipeline.trading.kill_switch import STATE_FILE as KILL_SWITCH_FILE

# The one-table sections and the class that checks each; ``builtin_agents`` and ``[[agents]]`` make the registry.
TABLES: dict[str, type] = {
    "market": MarketConfig,
    "reward": RewardConfig,
    "allocation": AllocationConfig,
    "guardrails": GuardrailConfig,
    "execution": ExecutionConfig,
    "metrics": MetricsConfig,
    "tick": TickConfig,
    "store": StoreConfig,
}
TOP_LEVEL_KEYS = ("builtin_agents", "agents", *TABLES)

# The (table, key) maps whose keys are agent names, checked against the registry at load.
AGENT_KEYED: tuple[tuple[str, str], ...] = (("allocation", "min_runs"), ("allocation", "max_runs"),
                                            ("tick", "agent_concurrency_overrides"))


def check_agent_names(tables: Mapping[str, ConfigTable], agents: AgentsConfig) -> None:
    """Every agent-keyed map names registered agents only; ConfigError names the entry and the closest agent."""
    registered = [spec.name for spec in agents.specs()]
    for table, key in AGENT_KEYED:
        for name in getattr(tables[table], key):
            if name in registered:
                continue
            hint = closest(name, registered)
            raise ConfigError(f"[{table}] {key}.{name}: no agent {name!r} is registered"
                              + (f"; did you mean {hint!r}?" if hint else "")
                              + f" (registered: {', '.join(registered) or 'none'})")


def check_history_start(history_start: str | None, today: date | None = None) -> None:
    """The first agent_rewards partition cannot be after today (UTC): no partition would exist, and nothing would
    be priced; nor before the oldest time an event may have (tens of thousands of empty daily partitions). Unset,
    the partitions start on the first stored event's day."""
    if history_start is None:
        return
    today = today or datetime.now(UTC).date()
    if date.fromisoformat(history_start) < OLDEST_ACCEPTED.date():
        raise ConfigError(f"[reward.history] history_start {history_start} is before "
                          f"{OLDEST_ACCEPTED.date().isoformat()}, the oldest time an event may have")
    if date.fromisoformat(history_start) > today:
        raise ConfigError(f"[reward.history] history_start {history_start} is in the future (today is "
                          f"{today.isoformat()} UTC); it is the first day of agent_rewards")


# "On in the pipeline, off in the bare code default": applied under the user's own [guardrails] values.
PIPELINE_GUARDRAILS: dict[str, Any] = {"require_approval": True}


def pipeline_guardrails(table: Mapping[str, Any] | None = None) -> GuardrailConfig:
    """``[guardrails]`` over the pipeline's defaults: two-person rule on, the safe limits filled in."""
    return GuardrailConfig.from_table({**PIPELINE_GUARDRAILS, **(table or {})}).with_safe_defaults()


@dataclass(frozen=True)
class Settings:
    """Every table, checked. ``home`` is the state folder all of them refer to."""

    home: Path
    market: MarketConfig = field(default_factory=MarketConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    allocation: AllocationConfig = field(default_factory=AllocationConfig)
    guardrails: GuardrailConfig = field(default_factory=pipeline_guardrails)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    tick: TickConfig = field(default_factory=TickConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    agents: AgentsConfig = field(default_factory=AgentsConfig)

    def __post_init__(self) -> None:
        # reward collapse has one table: the breaker applies the rule [reward.collapse] declares, never its own copy
        if self.guardrails.reward_collapse != self.reward.collapse:
            object.__setattr__(self, "guardrails",
                               dataclasses.replace(self.guardrails, reward_collapse=self.reward.collapse))

    @classmethod
    def load(cls, home: str | os.PathLike[str] | None = None,
             environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check ``config.toml`` of ``home`` (default ``$AGENT_PIPELINE_HOME``); ConfigError names what is
        wrong: the table or entry and the key."""
        path = pipeline_home(home)
        return cls.from_document(load_config(path), home=path, environ=environ)

    @classmethod
    def from_document(cls, document: Mapping[str, Any], *, home: str | os.PathLike[str] | None = None,
                      environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of one parsed config.toml (``environ``: default ``os.environ``)."""
        env = os.environ if environ is None else environ
        reject_unknown(document, TOP_LEVEL_KEYS, CONFIG_FILE + ":", what="top-level key")
        tables = {}
        for name in TABLES:
            table = document.get(name, {})
            if not isinstance(table, Mapping):
                raise ConfigError(f"{CONFIG_FILE}: [{name}] must be a table, got {type(table).__name__}")
            tables[name] = table
        metrics = MetricsConfig.from_table(tables["metrics"])
        if env.get(GATEWAY_ENV):
            metrics = MetricsConfig.from_table({**metrics.as_table(), "gateway_url": env[GATEWAY_ENV]},
                                               where=f"${GATEWAY_ENV} ([metrics])")
        store = StoreConfig.from_table(tables["store"])
        if env.get(STORE_URL_ENV):
            store = StoreConfig.from_table({**store.as_table(), "url": env[STORE_URL_ENV]},
                                           where=f"${STORE_URL_ENV} ([store])")
        settings = cls(
            home=pipeline_home(home),
            market=MarketConfig.from_table(tables["market"]),
            reward=RewardConfig.from_table(tables["reward"]),
            allocation=AllocationConfig.from_table(tables["allocation"]),
            guardrails=pipeline_guardrails(tables["guardrails"]),
            execution=ExecutionConfig.from_table(tables["execution"]),
            metrics=metrics,
            tick=TickConfig.from_table(tables["tick"]),
            store=store,
            agents=AgentsConfig.from_document(document.get("builtin_agents", True), document.get("agents", [])),
        )
        check_agent_names({name: getattr(settings, name) for name in TABLES}, settings.agents)
        check_history_start(settings.reward.history.history_start)
        return settings

    @property
    def store_path(self) -> Path:
        """The embedded DuckDB file of the home (the store unless ``[store] url`` names another)."""
        return self.home / DB_FILE

    @property
    def store_location(self) -> str:
        """What ``Store(...)`` opens: the configured URL, else the home's DuckDB file."""
        return self.store.url or str(self.store_path)

    @property
    def kill_switch_path(self) -> Path:
        return self.home / KILL_SWITCH_FILE

    def alert_inputs(self) -> AlertInputs:
        """The thresholds the alert rules compare with, from the same tables the pipeline runs on."""
        collapse = self.reward.collapse
        return AlertInputs(collapse_min_runs=collapse.min_runs, collapse_drop_std=collapse.drop_std,
                           collapse_min_drop=collapse.min_drop, collapse_floor=collapse.floor,
                           period_minutes=self.allocation.period_minutes)


# -- the reference of every table, generated from the declarations (README's "Configuration reference") ---------

_KIND_NAMES = {"bool": "true/false", "int": "integer", "number": "number", "text": "string",
               "texts": "list of strings", "date": "date YYYY-MM-DD", "url": "http(s) URL", "table": "table",
               "int_map": "table of integers", "number_map": "table of numbers", "nested": "table",
               "nested_map": "table of tables"}


def _toml(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, ConfigTable):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.as_table().items()) + " }"
    if isinstance(value, dict):
        return "{}" if not value else "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _accepts(rule) -> str:
    parts = []
    if rule.bounds():
        parts.append(rule.bounds().strip())
    if rule.choices is not None:
        parts.append(" \\| ".join(rule.choices) if len(rule.choices) <= 6 else "a reason code (README: Trading safety)")
    if rule.pattern_doc:
        parts.append(rule.pattern_doc.removeprefix("be ").removeprefix("look "))
    if rule.optional:
        parts.append("or unset")
    return "; ".join(parts)


def _field_default(f) -> Any:
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else MISSING


def _table_reference(title: str, cls: type, defaults: Any) -> list[str]:
    """``defaults``: the object whose values are the pipeline's defaults (None: each field's own default)."""
    lines = [f"`{title}`", "", "| key | type | default | accepts | meaning |", "|---|---|---|---|---|"]
    nested = []
    for key, (f, rule) in rules(cls).items():
        code = _field_default(f)
        default = getattr(defaults, key) if defaults is not None else code
        shown = "required" if default is MISSING else _toml(default)
        if code is not MISSING and default != code:
            shown += f" (bare `{cls.__name__}()`: {_toml(code)})"
        if rule.kind == NESTED_MAP:
            shown = ", ".join(sorted(default)) + " built in" if default else "{}"
            nested.append((f"[{title.strip('[]')}.{key}.<name>]", rule.table, None))
        if rule.kind == NESTED:
            shown = f"see `[{title.strip('[]')}.{key}]`"
            nested.append((f"[{title.strip('[]')}.{key}]", rule.table, default))
        doc = rule.doc.replace("|", "\\|")
        lines.append(f"| `{key}` | {_KIND_NAMES[rule.kind]} | {shown} | {_accepts(rule)} | {doc} |")
    out = lines + [""]
    for sub_title, sub_cls, sub_defaults in nested:
        out += _table_reference(sub_title, sub_cls, sub_defaults)
    return out


def settings_reference() -> str:
    """Markdown tables of every key: type, the pipeline's default, what is accepted (README keeps a copy; a test
    checks that it matches)."""
    defaults = Settings(home=Path("."))
    out = ["Top level: `builtin_agents` (true/false, default true: run the built-in agents) and `[[agents]]`."]
    out += [""]
    for name in TABLES:
        out += _table_reference(f"[{name}]", TABLES[name], getattr(defaults, name))
    out += _table_reference("[[agents]]", AgentSpec, None)
    return "\n".join(out).rstrip() + "\n"
