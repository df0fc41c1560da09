"""The ``agent-pipeline`` console script. Each domain adds its subcommands in its own module here.

``main`` is the edge: it loads the settings once and passes them to the subcommands that declare
``set_defaults(settings=REQUIRED)`` (``func(args, settings)``). The kill switch never depends on config.toml (a
broken file must not stop anyone from halting trading), and a command that only uses the settings for advice
declares ``OPTIONAL``: it gets None, and the error in ``args.settings_error``, when the file does not load.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from agent_pipeline.settings import ConfigError

REQUIRED = "required"  # the command needs valid settings: a config error is its error
OPTIONAL = "optional"  # the command runs without them (and says what could not be read)
# Modules that define ``register(subparsers)``; each adds its commands with ``set_defaults(func=...)``.
COMMAND_MODULES = (
    "agent_pipeline.cli.agents",
    "agent_pipeline.cli.metrics",
    "agent_pipeline.cli.kill_switch",
    "agent_pipeline.cli.approvals",
    "agent_pipeline.cli.events",
    "agent_pipeline.cli.store",
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
        needs = getattr(args, "settings", None)
        if needs is None:
            return int(args.func(args) or 0)
        from agent_pipeline.pipeline_settings import Settings

        try:
            settings = Settings.load()
        except ConfigError as exc:
            if needs == REQUIRED:
                raise
            settings, args.settings_error = None, exc
        return int(args.func(args, settings) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"agent-pipeline {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
