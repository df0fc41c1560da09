"""One way to declare and check a configuration table.

Every config dataclass (one per table of config.toml) declares each key with ``setting(...)``: its kind, range,
choices, whether it may be None, and a line of doc. Inheriting ``ConfigTable`` gives it

- one validator, run in ``__post_init__``, so a value is checked however the object is built (from the file, from
  Dagster run config, or in Python) and ``GuardrailConfig(max_daily_loss_usd=0)`` fails like the file would;
- ``from_table(table, where)``: unknown keys are errors naming the closest valid key, required keys must be there,
  lists become tuples, nested tables become their dataclasses;
- ``as_table()``: the plain values back, so Dagster resources and run-config overrides can be built from (and
  layered over) the same declaration instead of a hand-written mirror.

Strings are strings, booleans are booleans (``"false"`` is an error, and so is ``1``), numbers are real, finite
and in range (a bool is never a number). Messages always name the table or entry and the key:
``[allocation] period_minutes must be an integer in [1, 1440], got 0``,
``agents[2] (llm_news): timeout_sec must be a number in (0, 3600], got 1e+12``.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
import re
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import MISSING
from datetime import date
from typing import Any, ClassVar

from agent_pipeline.numbers import finite_number
from agent_pipeline.settings import ConfigError

BOOL = "bool"
INT = "int"
NUMBER = "number"
TEXT = "text"
TEXTS = "texts"            # a list of strings (kept as a tuple)
DATE = "date"              # "YYYY-MM-DD" (a TOML date is accepted and kept as that string)
URL = "url"                # an http(s) URL
TABLE = "table"            # a free-form table (an agent's or a policy's own parameters)
INT_MAP = "int_map"        # name -> integer
NUMBER_MAP = "number_map"  # name -> number
NESTED = "nested"          # a sub-table with its own ConfigTable class
NESTED_MAP = "nested_map"  # name -> sub-table of one ConfigTable class

KINDS = (BOOL, INT, NUMBER, TEXT, TEXTS, DATE, URL, TABLE, INT_MAP, NUMBER_MAP, NESTED, NESTED_MAP)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_WHERE: ContextVar[str | None] = ContextVar("config_where", default=None)


@dataclasses.dataclass(frozen=True)
class Rule:
    """What a key accepts. Bounds: ``gt``/``ge`` below, ``lt``/``le`` above (numbers, integers and map values)."""

    kind: str
    optional: bool = False
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    pattern_doc: str = ""  # what a value must do, as a verb phrase: "be lowercase letters", "look like a:b"
    min_items: int = 0
    table: type | None = None
    merge: bool = False
    convert: Callable[[Any], Any] | None = None
    doc: str = ""

    def bounds(self) -> str:
        low = f"({_fmt(self.gt)}" if self.gt is not None else f"[{_fmt(self.ge)}" if self.ge is not None else None
        high = f"{_fmt(self.lt)})" if self.lt is not None else f"{_fmt(self.le)}]" if self.le is not None else None
        if low and high:
            return f" in {low}, {high}"
        if low:
            return f" > {_fmt(self.gt)}" if self.gt is not None else f" >= {_fmt(self.ge)}"
        if high:
            return f" < {_fmt(self.lt)}" if self.lt is not None else f" <= {_fmt(self.le)}"
        return ""

    def in_bounds(self, x: float) -> bool:
        return ((self.gt is None or x > self.gt) and (self.ge is None or x >= self.ge)
                and (self.lt is None or x < self.lt) and (self.le is None or x <= self.le))


def _fmt(bound: float) -> str:
    if isinstance(bound, int) or (float(bound).is_integer() and abs(bound) < 1e15):
        return str(int(bound))
    return f"{bound:g}"


def setting(default: Any = MISSING, kind: str = NUMBER, *, factory: Callable[[], Any] | None = None,
            optional: bool = False, gt: float | None = None, ge: float | None = None, lt: float | None = None,
            le: float | None = None, choices: Iterable[str] | None = None, pattern: str | None = None,
            pattern_doc: str = "", min_items: int = 0, table: type | None = None, merge: bool = False,
            convert: Callable[[Any], Any] | None = None, doc: str = "") -> Any:
    """A dataclass field carrying its ``Rule``. No default and no factory: the key is required.

    ``min_items``: at least this many items (lists) or characters (strings).
    ``merge`` (nested maps): a table from the file is merged over the default one instead of replacing it.
    ``convert``: applied before the checks (e.g. ``value_floor = -inf`` becomes None); its ValueError says what the
    value "must be ..." (the message is prefixed with the table and key).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown setting kind {kind!r}")
    rule = Rule(kind, optional, gt, ge, lt, le, tuple(choices) if choices is not None else None, pattern,
                pattern_doc, min_items, table, merge, convert, doc)
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"rule": rule})
    return dataclasses.field(default=default, metadata={"rule": rule})


def rules(cls: type) -> dict[str, tuple[dataclasses.Field, Rule]]:
    """The declared keys of a config dataclass, in declaration order."""
    return {f.name: (f, f.metadata["rule"]) for f in dataclasses.fields(cls) if "rule" in f.metadata}


def closest(key: str, known: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return match[0] if match else None


def reject_unknown(table: Mapping[str, Any], known: Iterable[str], where: str,
                   error: type[ConfigError] = ConfigError, what: str = "key") -> None:
    """A key nobody reads is an error naming the closest valid key: a misspelt limit must never stay at its default."""
    known = list(known)
    unknown = [k for k in table if k not in known]
    if not unknown:
        return
    parts = []
    for key in unknown:
        hint = closest(str(key), known)
        parts.append(f"unknown {what} {key!r}" + (f"; did you mean {hint!r}?" if hint else ""))
    raise error(f"{where} {'; '.join(parts)} (valid: {', '.join(known)})")


def sub_where(where: str, key: str) -> str:
    """How messages name a sub-table: ``[reward]`` + ``history`` is ``[reward.history]``."""
    if where.startswith("[") and where.endswith("]"):
        return f"[{where[1:-1]}.{key}]"
    return f"{where.rstrip(':')}.{key}:" if where.endswith(":") else f"{where}.{key}"


class ConfigTable:
    """Base of every config dataclass: ``SECTION`` names it in messages, ``ERROR`` is the exception it raises.

    ``check(where)`` is the hook for rules across keys (``min_reward`` below ``max_reward``, ...); it runs after
    every key passed its own rule. ``RETIRED`` maps a key that no longer exists to what replaces it: a file that
    still sets it fails to load with that text, so nobody's setting is dropped without a word.
    """

    SECTION: ClassVar[str] = ""
    ERROR: ClassVar[type[ConfigError]] = ConfigError
    RETIRED: ClassVar[Mapping[str, str]] = {}

    def __post_init__(self) -> None:
        where = _WHERE.get() or self.SECTION
        for name, (_f, rule) in rules(type(self)).items():
            object.__setattr__(self, name, check_value(rule, getattr(self, name), where, name, self.ERROR))
        self.check(where)

    def check(self, where: str) -> None:
        """Rules across keys; raise ``self.ERROR`` naming ``where``."""

    @classmethod
    def from_table(cls, table: Any, where: str | None = None):
        """Build from a parsed table (config.toml, run config): unknown keys fail with the closest valid key."""
        where = where or cls.SECTION
        if not isinstance(table, Mapping):
            raise cls.ERROR(f"{where} must be a table, got {type(table).__name__}")
        declared = rules(cls)
        retired = [f"{key} is retired: {cls.RETIRED[key]}" for key in table if key in cls.RETIRED]
        if retired:
            raise cls.ERROR(f"{where} {'; '.join(retired)}")
        reject_unknown(table, declared, where, cls.ERROR)
        values: dict[str, Any] = {}
        for name, (f, rule) in declared.items():  # the values given first: a bad value is named before a gap
            if name in table:
                values[name] = check_value(rule, table[name], where, name, cls.ERROR)
                if rule.kind == NESTED_MAP and rule.merge:
                    values[name] = {**f.default_factory(), **values[name]}
        for name, (f, _rule) in declared.items():
            if name not in table and f.default is MISSING and f.default_factory is MISSING:
                raise cls.ERROR(f"{where} {name!r} is required")
        token = _WHERE.set(where)
        try:
            return cls(**values)
        finally:
            _WHERE.reset(token)

    def as_table(self) -> dict[str, Any]:
        """The values as plain data (tuples as lists, sub-tables as dicts): what ``from_table`` reads back."""
        return {name: _plain(getattr(self, name)) for name in rules(type(self))}


def _plain(value: Any) -> Any:
    if isinstance(value, ConfigTable):
        return value.as_table()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def check_value(rule: Rule, value: Any, where: str, key: str, error: type[ConfigError] = ConfigError) -> Any:
    """``value`` checked against ``rule`` (and normalised: lists to tuples, dicts to sub-tables), or ``error``."""
    if rule.convert is not None:
        try:
            value = rule.convert(value)
        except (TypeError, ValueError) as exc:
            raise error(f"{where} {key} {exc}") from None
    if value is None and rule.optional:
        return None

    def bad(expected: str) -> ConfigError:
        return error(f"{where} {key} must be {expected}, got {value!r}")

    kind = rule.kind
    if kind == BOOL:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind in (INT, NUMBER):
        return _number(rule, value, bad)
    if kind in (TEXT, URL, DATE):
        if kind == DATE and isinstance(value, date) and not hasattr(value, "hour"):
            value = value.isoformat()  # an unquoted TOML date
        if not isinstance(value, str):
            raise bad("a string" if kind == TEXT else "a date YYYY-MM-DD" if kind == DATE else "an http(s) URL")
        _text(rule, value, where, key, error)
        if len(value) < rule.min_items:
            raise bad(f"a string of at least {rule.min_items} character(s)")
        if kind == DATE:
            try:
                date.fromisoformat(value)
                ok = bool(_DATE.fullmatch(value))
            except ValueError:
                ok = False
            if not ok:
                raise bad("a date YYYY-MM-DD")
        if kind == URL and not re.match(r"https?://[^\s/]+", value):
            raise bad("an http(s) URL")
        return value
    if kind == TEXTS:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise bad("a list of strings")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise error(f"{where} {key}[{i}] must be a string, got {item!r}")
            _text(rule, item, where, f"{key}[{i}]", error)
        if len(value) < rule.min_items:
            raise bad(f"a list of at least {rule.min_items} string(s)")
        return tuple(value)
    if kind == TABLE:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise bad("a table")
        return dict(value)
    if kind in (INT_MAP, NUMBER_MAP):
        if not isinstance(value, Mapping):
            raise bad("a table of " + ("integers" if kind == INT_MAP else "numbers"))
        item_rule = dataclasses.replace(rule, kind=INT if kind == INT_MAP else NUMBER, optional=False)
        return {str(k): _number(item_rule, v, lambda expected, k=k, v=v: error(
            f"{where} {key}.{k} must be {expected}, got {v!r}")) for k, v in value.items()}
    if kind == NESTED:
        if isinstance(value, Mapping):
            return rule.table.from_table(value, sub_where(where, key))
        if not isinstance(value, rule.table):
            raise bad(f"a table ({rule.table.__name__})")
        return value
    if kind == NESTED_MAP:
        if not isinstance(value, Mapping):
            raise bad("a table of tables")
        out = {}
        for k, v in value.items():
            if isinstance(v, Mapping):
                v = rule.table.from_table(v, sub_where(where, f"{key}.{k}"))
            elif not isinstance(v, rule.table):
                raise error(f"{where} {key}.{k} must be a table ({rule.table.__name__}), got {v!r}")
            out[str(k)] = v
        return out
    raise AssertionError(kind)


def _number(rule: Rule, value: Any, bad: Callable[[str], ConfigError]) -> Any:
    integer = rule.kind == INT
    expected = ("an integer" if integer else "a number") + rule.bounds()
    if integer:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise bad(expected)
        value = int(value)
        if not rule.in_bounds(value):
            raise bad(expected)
        return value
    number = finite_number(value)
    if number is None or not rule.in_bounds(number):
        raise bad(("a finite number" if rule.bounds() == "" else "a number") + rule.bounds())
    return value


def _text(rule: Rule, value: str, where: str, key: str, error: type[ConfigError]) -> None:
    if rule.choices is not None and value not in rule.choices:
        raise error(f"{where} {key} {value!r} is not one of {list(rule.choices)}")
    if rule.pattern is not None and not re.fullmatch(rule.pattern, value):
        raise error(f"{where} {key} {value!r} must {rule.pattern_doc or 'match ' + rule.pattern}")
