"""What an agent name may be: one rule for the registry, imported history and metric labels.

A name keys the agent's jobs and ops, its rows in every table and its metric series, so it has one normalised
form: lowercase ASCII letters, digits and ``_``, starting with a letter, at most 63 characters. Anything else
(empty, padded with spaces, a control character, another case, 100 kB long) is not the same agent under a
slightly different spelling; it is refused where it enters.
"""

from __future__ import annotations

import re

NAME_PATTERN = r"[a-z][a-z0-9_]{0,62}"
NAME_RULE = "lowercase letters, digits and _ (starting with a letter, at most 63)"

_NAME = re.compile(NAME_PATTERN)


def is_agent_name(value: object) -> bool:
    """Whether ``value`` is a string in the registry's normalised form."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None
