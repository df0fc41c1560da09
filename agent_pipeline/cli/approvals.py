"""``agent-pipeline approve AGENT --approver NAME``: one person's signed approval of a strategy's current hash.

A strategy trades (when the two-person rule is on) once two distinct people have approved its current fingerprint
(code reference + configuration); names are compared after normalisation, so "alice" and "ALICE" are one person.
The agent must be registered, also with ``--strategy-hash``. The token is signed with $AGENT_PIPELINE_APPROVER_KEY
(the approver's own key) or else $AGENT_PIPELINE_APPROVAL_KEY (the shared key); the OS account running the command
is recorded beside the claimed name.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from datetime import timedelta

from agent_pipeline.cli import REQUIRED
from agent_pipeline.store import Store
from agent_pipeline.trading.approval_store import store_approval
from agent_pipeline.trading.approvals import MAX_TTL, issue

_HASH = re.compile(r"[0-9a-f]{64}")


def ttl_days(text: str) -> float:
    """``--ttl-days``: a finite number of days in (0, MAX_TTL]; ValueError naming the flag otherwise."""
    try:
        days = float(text)
    except (TypeError, ValueError):
        days = math.nan
    if not math.isfinite(days) or not 0 < days <= MAX_TTL.days:
        raise ValueError(f"--ttl-days must be a number of days greater than 0 and at most {MAX_TTL.days}, "
                         f"got {text!r}")
    return days


def _approve(args: argparse.Namespace, settings) -> int:
    days = ttl_days(args.ttl_days)
    specs = settings.agents.enabled()  # the fingerprint is the spec's: no agent code is imported to approve it
    if args.agent not in specs:
        raise ValueError(f"no agent named {args.agent!r}; registered: {sorted(specs)}")
    strategy_hash = specs[args.agent].fingerprint()
    if args.strategy_hash is not None:
        if not _HASH.fullmatch(args.strategy_hash):
            raise ValueError(f"--strategy-hash must be 64 lowercase hex digits (an agent fingerprint), "
                             f"got {args.strategy_hash!r}")
        strategy_hash = args.strategy_hash
    approval = issue(strategy_hash, args.approver, agent=args.agent, ttl=timedelta(days=days))
    store_approval(Store(settings.store_location), approval)
    print(json.dumps({"agent": args.agent, "approver": approval.approver, "identity": approval.identity,
                      "os_user": approval.os_user, "strategy_hash": strategy_hash,
                      "expires_at_epoch": approval.expires_at, "token": approval.token}, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser("approve", help="sign one approval of an agent's strategy (two-person rule)")
    cmd.add_argument("agent", help="registered agent name")
    cmd.add_argument("--approver", required=True, help="who approves (two distinct people are needed)")
    cmd.add_argument("--ttl-days", default="30", metavar="DAYS",
                     help=f"days until the approval expires (more than 0, at most {MAX_TTL.days}; default 30)")
    cmd.add_argument("--strategy-hash", help="approve this hash instead of the agent's current one")
    cmd.set_defaults(func=_approve, settings=REQUIRED)
