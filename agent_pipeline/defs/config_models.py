"""Dagster shapes of the config dataclasses, generated from their declarations instead of written twice.

A table is declared once, in its domain's ``config.py`` (``agent_pipeline.config_fields.setting``). From that
declaration this module builds

- ``config_resource(MarketConfig)``: the fields of a resource that carries the table's concrete values (every
  key required, so a resource is always built from loaded settings with ``from_config`` and a partial
  launchpad override of a resource fails loudly instead of resetting the other keys to code defaults);
- ``run_overrides(RewardConfig, ...)``: a run-config class whose keys are all optional, for changing a value for
  one run (a reprice backfill with another ``fill_prob``, an allocation with another policy), applied with
  ``layered`` over the resource's or settings' concrete value and checked by the same validator.

Validation is never repeated here: pydantic only types the launchpad; the dataclass decides what is valid.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Optional

import dagster as dg
from pydantic import Field, create_model, model_validator

from agent_pipeline.config_fields import (
    BOOL,
    DATE,
    INT,
    INT_MAP,
    NESTED,
    NESTED_MAP,
    NUMBER,
    NUMBER_MAP,
    TABLE,
    TEXT,
    TEXTS,
    URL,
    ConfigTable,
    Rule,
    reject_unknown,
    rules,
)

_PLAIN: dict[str, Any] = {BOOL: bool, INT: int, NUMBER: float, TEXT: str, DATE: str, URL: str, TEXTS: list[str],
                          TABLE: dict[str, Any], INT_MAP: dict[str, int], NUMBER_MAP: dict[str, float]}


def _python_type(rule: Rule, *, partial: bool) -> Any:
    if rule.kind == NESTED:
        base = override_model(rule.table) if partial else table_model(rule.table)
    elif rule.kind == NESTED_MAP:
        base = dict[str, table_model(rule.table)]
    else:
        base = _PLAIN[rule.kind]
    return Optional[base] if rule.optional or partial else base  # noqa: UP045 - pydantic needs a runtime type


@cache
def table_model(cls: type[ConfigTable]) -> type[dg.Config]:
    """A complete table (every key required): a nested table inside a resource, a budget in run config."""
    fields = {name: (_python_type(rule, partial=False), Field(description=rule.doc or None))
              for name, (_f, rule) in rules(cls).items()}
    return create_model(f"{cls.__name__}Table", __base__=dg.Config, **fields)


@cache
def override_model(cls: type[ConfigTable]) -> type[dg.Config]:
    """A partial table (every key optional, None: keep the value it is layered over)."""
    fields = {name: (_python_type(rule, partial=True), Field(default=None, description=rule.doc or None))
              for name, (_f, rule) in rules(cls).items()}
    return create_model(f"{cls.__name__}Override", __base__=dg.Config, **fields)


class ConfigResource(dg.ConfigurableResource):
    """Base of the resources that carry one table's concrete values (built with ``from_config``)."""

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_fields(cls, data: Any) -> Any:
        # a misspelt keyword would otherwise be dropped silently by the resource
        if isinstance(data, dict):
            reject_unknown(data, cls.model_fields, cls.__name__)
        return data

    @classmethod
    def config_class(cls) -> type[ConfigTable]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: ConfigTable, **extra: Any):
        """The resource carrying ``config``'s values (``extra``: the resource's own fields beyond the table)."""
        return cls(**config.as_table(), **extra)

    @classmethod
    def of(cls, **values: Any):
        """The table's code defaults with ``values`` (tests, scripts): ``MarketResource.of(fault_rate=1.0)``."""
        return cls.from_config(cls.config_class()(**values))

    def config(self):
        """The table's dataclass, checked again (a launchpad value passes the same validator as the file)."""
        table_cls = self.config_class()
        values = self.model_dump()
        return table_cls.from_table({name: values[name] for name in rules(table_cls)}, where=type(self).__name__)


def config_resource(cls: type[ConfigTable]) -> type[ConfigResource]:
    """The base class of a resource carrying ``cls``'s table: one required field per key, with its doc."""
    fields = {name: (_python_type(rule, partial=False), Field(description=rule.doc or None))
              for name, (_f, rule) in rules(cls).items()}
    base = create_model(f"_{cls.__name__}Fields", __base__=ConfigResource, **fields)
    base.config_class = classmethod(lambda _resource_cls: cls)
    return base


def run_overrides(cls: type[ConfigTable], keys: tuple[str, ...], name: str, doc: str) -> type[dg.Config]:
    """Run config for one asset or op: the listed keys of ``cls``, each optional (None keeps the value)."""
    declared = rules(cls)
    fields = {key: (_python_type(declared[key][1], partial=True),
                    Field(default=None, description=declared[key][1].doc or None)) for key in keys}
    return create_model(name, __base__=dg.Config, __doc__=doc, **fields)


def layered(config: ConfigTable, overrides: dg.Config, where: str):
    """``config`` with the values set in ``overrides`` (run config) on top, checked by ``config``'s validator.

    A sub-table is merged key by key (``history: {max_reward: 9}`` keeps the other history keys); a table of
    tables entry by entry (``budgets: {momentum: {...}}`` keeps the other strategies' budgets); anything else,
    a policy's ``params`` included, is replaced.
    """
    table = config.as_table()
    declared = rules(type(config))
    for key, value in overrides.model_dump().items():
        if value is None:
            continue
        kind = declared[key][1].kind
        if kind == NESTED:
            table[key] = {**(table[key] or {}), **{k: v for k, v in value.items() if v is not None}}
        elif kind == NESTED_MAP:
            table[key] = {**table[key], **value}
        else:
            table[key] = value
    return type(config).from_table(table, where)
