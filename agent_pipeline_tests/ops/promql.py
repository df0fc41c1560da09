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


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title / refId, expr) for every target of every panel."""
    return [(f"{p['title']} / {t['refId']}", t["expr"]) for p in dashboard()["panels"] for t in p.get("targets", [])]


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
