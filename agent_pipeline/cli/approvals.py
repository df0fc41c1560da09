"""``agent-pipeline approve AGENT --approver NAME``: one person's signed approval of a strategy's current hash.

A strategy trades (when the two-person rule is on) once two distinct approvers have approved its current
fingerprint (code reference + configuration). The HMAC key comes from $AGENT_PIPELINE_APPROVAL_KEY.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta

from agent_pipeline.agents import load_configured_registry
from agent_pipeline.store import Store
from agent_pipeline.trading.approvals import issue
from agent_pipeline.trading.ledger import store_approval


def _approve(args: argparse.Namespace) -> int:
    if args.strategy_hash:
        strategy_hash = args.strategy_hash
    else:
        registry = load_configured_registry()
        if args.agent not in registry:
            raise ValueError(f"no agent named {args.agent!r}; registered: {sorted(registry)}")
        strategy_hash = registry[args.agent].spec.fingerprint()
    if args.ttl_days <= 0:
        raise ValueError("--ttl-days must be positive")
    approval = issue(strategy_hash, args.approver, agent=args.agent, ttl=timedelta(days=args.ttl_days))
    store_approval(Store.at_home(), approval)
    print(json.dumps({"agent": args.agent, "approver": approval.approver, "strategy_hash": strategy_hash,
                      "expires_at_epoch": approval.expires_at, "token": approval.token}, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser("approve", help="sign one approval of an agent's strategy (two-person rule)")
    cmd.add_argument("agent", help="registered agent name")
    cmd.add_argument("--approver", required=True, help="who approves (two distinct approvers are needed)")
    cmd.add_argument("--ttl-days", type=float, default=30.0, help="days until the approval expires")
    cmd.add_argument("--strategy-hash", help="approve this hash instead of the agent's current one")
    cmd.set_defaults(func=_approve)
