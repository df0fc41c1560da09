"""Reading the PromQL in our dashboard and alert rules: every query, the metric names it reads, and for an
alert the query without its threshold (what must return data for the alert to be able to fire)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

OPS = Path(__file__).resolve().parents[2] / "ops"
DASHBOARD = OPS / "grafana" / "dashboards" / "agent_pipeline.json"
RULES = OPS / "prometheus" / "rules" / "agent_pipeline.yml"

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
             "offset", "inf", "nan"}


# What Grafana puts in place of its built-in variables when a query runs, for running the queries ourselves.
BUILTIN_VARIABLES = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(d: dict | None = None) -> list[dict]:
    """Every panel, those inside collapsed rows included (a collapsed row keeps its panels in its own list)."""
    out = []
    for p in (d or dashboard())["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title / refId, expr) for every target of every panel."""
    return [(f"{p['title']} / {t['refId']}", t["expr"]) for p in panels() for t in p.get("targets", [])]


def annotation_queries() -> list[tuple[str, str]]:
    """(annotation name, expr) for every Prometheus annotation."""
    return [(a["name"], a["expr"]) for a in dashboard()["annotations"]["list"] if a.get("expr")]


def variable_defaults(d: dict | None = None) -> dict[str, str]:
    """Each template variable's default as Grafana would interpolate it into a query (All -> its allValue)."""
    out = {}
    for v in (d or dashboard())["templating"]["list"]:
        value = v.get("current", {}).get("value")
        if isinstance(value, list):
            value = value[0] if len(value) == 1 else "(" + "|".join(value) + ")"
        out[v["name"]] = v.get("allValue", ".*") if value == "$__all" else str(value)
    return out


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def variables_used(text: str) -> set[str]:
    return {a or b for a, b in _VARIABLE.findall(text)}


def runnable(expr: str, values: dict[str, str] | None = None) -> str:
    """``expr`` with every variable replaced (dashboard defaults, then Grafana's built-ins), ready for Prometheus."""
    values = {**BUILTIN_VARIABLES, **variable_defaults(), **(values or {})}

    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            raise KeyError(f"undefined variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(sub, expr)


def alert_rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


def _top_level_unless(expr: str) -> int | None:
    depth = 0
    for m in re.finditer(r"[()\[\]{}]|\bunless\b", expr):
        tok = m.group(0)
        if tok in "([{":
            depth += 1
        elif tok in ")]}":
            depth -= 1
        elif depth == 0:
            return m.start()
    return None


def split_threshold(expr: str) -> tuple[str, str, str]:
    """``"<query> > 0.1 [unless ...]"`` -> ``("<query>", ">", "0.1")``: the exceptions after a top-level
    ``unless`` are dropped, then the split is at the last comparison at parenthesis depth 0."""
    cut = _top_level_unless(expr)
    if cut is not None:
        expr = expr[:cut].strip()
    depth, last = 0, None
    i = 0
    while i < len(expr):
        c = expr[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            for op in ("==", "!=", ">=", "<=", ">", "<"):
                if expr.startswith(op, i):
                    last = (i, op)
                    i += len(op) - 1
                    break
        i += 1
    if last is None:
        raise ValueError(f"alert expression has no top-level comparison: {expr!r}")
    pos, op = last
    return expr[:pos].strip(), op, expr[pos + len(op):].strip()


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, keywords, labels and durations removed)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)            # strings
    s = re.sub(r"\{[^}]*\}", "", s)                           # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)                          # range selectors
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)  # label lists
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        word = m.group(0)
        rest = s[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in _KEYWORDS:
            continue
        if m.start() > 0 and (s[m.start() - 1].isdigit() or s[m.start() - 1] == "."):
            continue  # exponent or unit of a number, e.g. 1e3
        names.add(word)
    return names
