"""``agent-pipeline import-events PATH``: bring an existing events.jsonl history into the store."""

from __future__ import annotations

import argparse
import sys
import time

from agent_pipeline.store import Store
from agent_pipeline.store.importer import ImportFileError, import_events


class ProgressBar:
    """A one-line text progress bar on stderr (redrawn at most every 0.1 s)."""

    def __init__(self, stream=None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        share = done / total if total else 1.0
        filled = int(round(share * self.width))
        self.stream.write(f"\rimporting [{'#' * filled}{'.' * (self.width - filled)}] {share:6.1%} "
                          f"{done:,}/{total:,} lines")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _import(args: argparse.Namespace) -> int:
    progress = None if args.quiet else ProgressBar()
    if progress:
        print(f"reading and checking {args.path} ...", file=sys.stderr, flush=True)
    try:
        report = import_events(Store.at_home(), args.path, progress=progress)
    except ImportFileError as exc:
        print(f"agent-pipeline import-events: {exc}", file=sys.stderr)
        return 2
    print(report)
    _warn_before_history_start(report)
    _report_to_dagster(report)
    if report.quarantined_total:
        print("  see: SELECT * FROM import_quarantine WHERE file = '" + report.path.replace("'", "''") + "'")
    return 0


def _warn_before_history_start(report) -> None:
    """Events older than the first agent_rewards partition cannot be backfilled until history_start moves."""
    from agent_pipeline.reward import RewardConfig

    if report.first_started_at is None:
        return
    start = RewardConfig.load().history.history_start
    first_day = report.first_started_at.strftime("%Y-%m-%d")
    if first_day < start:
        print(f"  note: events from {first_day} precede the first agent_rewards partition ({start}); to backfill "
              f"them set history_start = \"{first_day}\" under [reward.history] in config.toml")


def _report_to_dagster(report) -> None:
    """Record the import as a materialization of agent_events in the Dagster instance at $DAGSTER_HOME, if any,
    so the asset's history in the UI shows it. Best effort: the import itself has already succeeded."""
    import os

    if not os.environ.get("DAGSTER_HOME") or report.inserted == 0:
        return
    try:
        import dagster as dg

        with dg.DagsterInstance.get() as instance:
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key="agent_events", description=f"agent-pipeline import-events {report.path}",
                metadata={"file": report.path, "inserted": report.inserted, "already_present": report.already_present,
                          "quarantined": report.quarantined_total, "lines": report.lines}))
        print("  recorded as a materialization of agent_events in the Dagster instance")
    except Exception as exc:  # noqa: BLE001 - never fail an import that is already committed
        print(f"  note: could not record the import in the Dagster instance: {exc}", file=sys.stderr)


def register(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser(
        "import-events", help="import an events.jsonl history into agent_events (idempotent)",
        description="Import a JSON-lines history (one object per line with at least agent and reward). Bad lines "
                    "go to the import_quarantine table with file, line number and reason; importing the same file "
                    "again adds nothing. Afterwards backfill agent_rewards over the days it covers.")
    cmd.add_argument("path", help="the events.jsonl file")
    cmd.add_argument("--quiet", action="store_true", help="no progress bar")
    cmd.set_defaults(func=_import)
