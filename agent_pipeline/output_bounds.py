"""How deep and how large an agent output may be, for every path that stores or reads one.

An output is stored as JSON and parsed again whenever history is repriced. Python's JSON parser (and anything that
walks the result recursively) fails on deep nesting, and a huge output is read again on every repricing, so one bad
output could make a day's repricing fail forever. The run-time check (``normalize_result``), the import and the
repricing therefore share these caps, and the checks themselves never recurse: they walk with an explicit stack or
scan the text.

- Depth: a container (list or dict) is one level, so ``[{"profit_pct": 0.5}]`` is 2 deep. More than
  ``MAX_OUTPUT_DEPTH`` (32) levels is refused; real signals use 2 or 3.
- Size: the UTF-8 length of the output's JSON text as stored. More than ``MAX_OUTPUT_BYTES`` (256 KiB) is refused;
  a signal list of a few hundred items is a few tens of KiB.
"""

from __future__ import annotations

import re
from typing import Any

MAX_OUTPUT_DEPTH = 32
MAX_OUTPUT_BYTES = 256 * 1024

_CONTAINERS = (list, tuple, dict)  # what json.dumps writes as an array or object
_JSON_SYNTAX = re.compile(r'["\\\[\]{}]')


def depth_message(depth: int) -> str:
    return f"output nests {depth} or more levels deep, past the cap of {MAX_OUTPUT_DEPTH} levels"


def size_message(size: int) -> str:
    return (f"output is {size:,} bytes of JSON, past the cap of {MAX_OUTPUT_BYTES:,} bytes "
            f"({MAX_OUTPUT_BYTES // 1024} KiB)")


def value_depth(value: Any, limit: int = MAX_OUTPUT_DEPTH) -> int:
    """Nesting depth of a Python value (scalars 0), counted only up to ``limit + 1``; iterative, cycle-safe."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if not isinstance(item, _CONTAINERS):
            continue
        if level > deepest:
            deepest = level
            if deepest > limit:
                return deepest
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, level + 1) for child in children if isinstance(child, _CONTAINERS))
    return deepest


def text_depth(text: str, limit: int = MAX_OUTPUT_DEPTH) -> int:
    """Nesting depth of JSON text (brackets inside strings do not count), counted only up to ``limit + 1``."""
    depth = deepest = 0
    in_string = False
    skip_to = -1  # the character after a backslash inside a string is escaped
    for match in _JSON_SYNTAX.finditer(text):
        at = match.start()
        if at < skip_to:
            continue
        char = match.group()
        if in_string:
            if char == "\\":
                skip_to = at + 2
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def value_problem(value: Any) -> str | None:
    """Why a Python output is past the depth cap, or None (check before serialising or walking it)."""
    depth = value_depth(value)
    return depth_message(depth) if depth > MAX_OUTPUT_DEPTH else None


def size_problem(text: str) -> str | None:
    """Why a JSON text is past the size cap, or None."""
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    return size_message(size) if size > MAX_OUTPUT_BYTES else None


def text_problem(text: str) -> str | None:
    """Why a JSON text is past the size or depth cap, or None (check before parsing it)."""
    problem = size_problem(text)
    if problem is not None:
        return problem
    if text.count("[") + text.count("{") <= MAX_OUTPUT_DEPTH:  # cannot nest deeper: skip the scan (repricing)
        return None
    depth = text_depth(text)
    return depth_message(depth) if depth > MAX_OUTPUT_DEPTH else None
