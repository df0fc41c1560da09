"""``agent-pipeline agents``: list the registry, run one agent once, and show recent events."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from agent_pipeline.agents import AgentContext, build_agent
from agent_pipeline.agents import builtin as builtin_agents
from agent_pipeline.agents.builtin import BUILTIN_REFS
from agent_pipeline.agents.instrumentation import run_and_record
from agent_pipeline.cli import REQUIRED
from agent_pipeline.market import make_market
from agent_pipeline.store import Store, append_event, read_events
from agent_pipeline.trading.secrets import take_secrets

LIST_COLUMNS = ("name", "kind", "strategy", "enabled", "timeout_sec", "ref")


def _declared(spec, attr: str) -> str:
    """The entry's kind or strategy; for an unchanged built-in, its class's (read off the class, never built);
    "-" when the user's agent declares it itself (its code is not imported to find out)."""
    value = getattr(spec, attr)
    if value is None and BUILTIN_REFS.get(spec.name) == spec.ref:
        value = getattr(getattr(builtin_agents, spec.ref.partition(":")[2]), attr, None)
    return str(value) if value else "-"


def _list(args: argparse.Namespace, settings) -> int:
    """The specs as configured, enabled or not; no agent's module is imported or built (a ref is only text)."""
    print("\t".join(LIST_COLUMNS))
    for spec in sorted(settings.agents.specs(), key=lambda s: s.name):
        values = {"name": spec.name, "kind": _declared(spec, "kind"), "strategy": _declared(spec, "strategy"),
                  "enabled": "yes" if spec.enabled else "no", "timeout_sec": f"{spec.timeout_sec:g}",
                  "ref": spec.ref}
        print("\t".join(values[c] for c in LIST_COLUMNS))
    return 0


def _run(args: argparse.Namespace, settings) -> int:
    specs = settings.agents.enabled()
    if args.name not in specs:
        raise ValueError(f"no agent named {args.name!r}; registered: {sorted(specs)}")
    take_secrets()  # the keys leave os.environ before the agent's code is imported (trading/secrets.py)
    loaded = build_agent(specs[args.name])  # only this agent's code is imported
    run_id = f"cli:{datetime.now(UTC).isoformat()}"
    store = Store(settings.store_location)

    def prepare():
        market = make_market(settings.market, consumer=loaded.name)
        ctx = AgentContext(now=datetime.now(UTC), market=market, params=loaded.spec.params, run_id=run_id)
        return ctx, settings.reward

    # the event is stored before Ctrl-C or the agent's SystemExit propagates
    run = run_and_record(loaded, prepare, run_id=run_id, record=lambda event: append_event(store, event),
                         source="cli")
    event = run.event
    print(json.dumps({"event_id": event.event_id, "agent": event.agent, "reward": event.reward,
                      "latency_seconds": event.latency_seconds, "cost_usd": event.cost_usd, "error": event.error,
                      "thread_still_running": run.thread_running}, indent=2))
    return 1 if event.error else 0


def _events(args: argparse.Namespace, settings) -> int:
    frame = read_events(Store(settings.store_location), agent=args.agent, read_only=True)
    cols = ["started_at", "agent", "reward", "latency_seconds", "cost_usd", "error"]
    print(frame[cols].tail(args.limit).to_string(index=False) if not frame.empty else "no events yet")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    agents = sub.add_parser("agents", help="list registered agents, run one, show recent events")
    agents_sub = agents.add_subparsers(dest="agents_command", required=True)
    agents_sub.add_parser("list", help="the registered agents, as configured (runs no agent code)").set_defaults(
        func=_list, settings=REQUIRED)
    run = agents_sub.add_parser("run", help="run one agent once and store its event")
    run.add_argument("name")
    run.set_defaults(func=_run, settings=REQUIRED)
    events = agents_sub.add_parser("events", help="the most recent events")
    events.add_argument("--agent")
    events.add_argument("--limit", type=int, default=20)
    events.set_defaults(func=_events, settings=REQUIRED)
