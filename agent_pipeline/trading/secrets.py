"""The trading domain's secrets, read once at the edge and taken out of the process environment.

Agents run in the pipeline's own process, so whatever is in ``os.environ`` is within their reach (and is handed to
every subprocess they start): the kill switch's MAC key and the approval keys would let an agent forge an ACTIVE
state or sign approvals. ``take_secrets()`` runs where the pipeline starts, before any user code is imported (the
code location in ``definitions.py``, ``agent-pipeline agents run``): it moves ``SECRET_NAMES`` from
``os.environ`` into this module and deletes them from the environment. Every reader asks ``secret(name)`` (or
``secret_environ()``), which answers from the environment first (a process that took nothing, such as the CLI or a
test), then from what was taken.

The limit, stated plainly: Python code in the same process can still import this module and read its memory. Taking
the variables out keeps them from an agent that dumps or forwards its environment, from child processes and from
crash reports; against deliberately hostile code run agents under another OS account, in another process.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from agent_pipeline.trading.approvals import APPROVER_KEY_ENV, APPROVER_KEYS_ENV
from agent_pipeline.trading.config import APPROVAL_KEY_ENV
from agent_pipeline.trading.kill_switch import KEY_ENV

SECRET_NAMES = (KEY_ENV, APPROVAL_KEY_ENV, APPROVER_KEYS_ENV, APPROVER_KEY_ENV)

_taken: dict[str, str] = {}


def take_secrets(environ: MutableMapping[str, str] | None = None) -> tuple[str, ...]:
    """Move the secrets out of ``environ`` (default ``os.environ``) into this module; returns the names taken."""
    env = os.environ if environ is None else environ
    taken = []
    for name in SECRET_NAMES:
        value = env.pop(name, None)
        if value is not None:
            _taken[name] = value
            taken.append(name)
    return tuple(taken)


def secret(name: str) -> str:
    """One secret's value ("" when unset): the environment's, else the one taken from it at start."""
    if name not in SECRET_NAMES:
        raise KeyError(f"{name} is not one of the trading secrets {SECRET_NAMES}")
    return os.environ.get(name) or _taken.get(name, "")


def secret_environ() -> dict[str, str]:
    """The set secrets as a mapping, for readers that take an ``environ`` (approvals)."""
    return {name: value for name in SECRET_NAMES if (value := secret(name))}


def forget_secrets() -> None:
    """Drop what was taken (tests; a process that must stop holding the keys)."""
    _taken.clear()
