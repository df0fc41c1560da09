"""The ``agent-pipeline`` console script. Each domain adds its subcommands in its own module here."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that define ``register(subparsers)``; each adds its commands with ``set_defaults(func=...)``.
COMMAND_MODULES = (
    "agent_pipeline.cli.agents",
    "agent_pipeline.cli.metrics",
    "agent_pipeline.cli.kill_switch",
    "agent_pipeline.cli.approvals",
    "agent_pipeline.cli.events",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-pipeline",
        description="Operate agent_pipeline: its state lives under $AGENT_PIPELINE_HOME (default ~/.agent_pipeline).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"agent-pipeline {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
