"""``agent-pipeline kill-switch status|trip|reduce|clear``: operate the persisted kill switch.

The switch is a file under $AGENT_PIPELINE_HOME, so these commands work while the pipeline is writing DuckDB;
with a shared store (``[store] url`` or ``$AGENT_PIPELINE_STORE_URL`` naming a database) it is the table in that
database that every host's gate reads. A config.toml that does not load never stops a trip: the environment
variable still applies, else the file of the home is used, with a warning.
Trip, reduce and clear require ``--reason``; every one of them is an audit row with who (claimed, and the OS
account), when and why. A reduce or clear that cannot be made (damaged lock, audit log not writable) changes
nothing and exits 2 with a sentence saying why (so does one that was written but does not read as asked, e.g.
because the audit log is damaged); a trip always ends HALTED and exits 1 if anything failed on the way, listing
what. ``status`` exits 1, saying why on stderr, when the state or its audit log cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys

from agent_pipeline.settings import ConfigError
from agent_pipeline.trading.kill_switch import _default_actor, default_path
from agent_pipeline.trading.kill_switch_store import kill_switch_for


def _switch():
    """The switch the gates of the configured store read."""
    from agent_pipeline.pipeline_settings import Settings

    try:
        settings = Settings.load()
    except ConfigError as exc:
        print(f"agent-pipeline kill-switch: warning: config.toml does not load ({exc}); using the store named by "
              f"the environment, else the file of the home", file=sys.stderr)
        try:
            settings = Settings.from_document({})
        except ConfigError as env_exc:
            print(f"agent-pipeline kill-switch: warning: {env_exc}", file=sys.stderr)
            return kill_switch_for("", default_path())
    location = settings.store.url  # empty: the embedded DuckDB file, whose switch is the file of the home
    return kill_switch_for(location, default_path())


def _unreadable(status, rows: list[dict]) -> str:
    """Why the state or its audit cannot be read, or "" when both can."""
    if not status.readable:
        return f"the kill switch cannot be read and reads {status.state.value}: {status.reason}"
    broken = [row["raw"] for row in rows if "action" not in row and str(row.get("raw", "")).startswith("(")]
    return f"the audit log cannot be read: {broken[0]}" if broken else ""


def _status(args: argparse.Namespace) -> int:
    """Print the state and the latest audit rows; exit 1 (with a sentence) when either cannot be read."""
    kill = _switch()
    status = kill.status()
    rows = kill.audit(args.audit)
    problem = _unreadable(status, rows)
    if problem:
        print(f"agent-pipeline kill-switch status: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps({**status.as_dict(), "path": str(kill.path), "audit": rows}, indent=2))
        return 1 if problem else 0
    print(f"kill switch: {status.state.value}")
    if status.reason:
        print(f"reason:      {status.reason}")
    if status.by:
        print(f"by:          {status.by} at {status.at}")
    print(f"{'file:' if str(kill.path).startswith('/') else 'store:':12} {kill.path}")
    if rows:
        print("audit (latest last):")
        for row in rows:
            if "action" not in row:  # a damaged line, or the log itself unreadable
                print(f"  {row.get('raw', row)}")
                continue
            print(f"  {row.get('at', '?')}  {row.get('action', '?'):6} {row.get('from_state', '?')} -> "
                  f"{row.get('to_state', '?')}  by {row.get('by', '?')}: {row.get('reason', '')}")
    return 1 if problem else 0


def _change(action: str):
    def run(args: argparse.Namespace) -> int:
        reason = (args.reason or "").strip()
        if not reason:
            raise ValueError(f"kill-switch {action} needs --reason")
        status = getattr(_switch(), action)(reason, by=args.by or _default_actor())
        print(f"kill switch: {status.state.value} ({status.reason})")
        for problem in status.problems:
            print(f"agent-pipeline kill-switch {action}: warning: {problem}", file=sys.stderr)
        return 1 if status.problems else 0
    return run


def register(sub: argparse._SubParsersAction) -> None:
    ks = sub.add_parser("kill-switch", help="show, trip, reduce or clear the persisted kill switch")
    ks_sub = ks.add_subparsers(dest="kill_switch_command", required=True)
    status = ks_sub.add_parser("status", help="state, reason and the latest audit rows")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--audit", type=int, default=5, help="how many audit rows to show")
    status.set_defaults(func=_status)
    for action, text in (("trip", "halt all orders (latched until cleared)"),
                         ("reduce", "allow only orders that reduce a position"),
                         ("clear", "resume trading")):
        cmd = ks_sub.add_parser(action, help=text)
        cmd.add_argument("--reason", required=True, help="why (recorded in the audit)")
        cmd.add_argument("--by", help="who (default: the current user)")
        cmd.set_defaults(func=_change(action))
