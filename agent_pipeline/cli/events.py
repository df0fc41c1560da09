"""``agent-pipeline import-events PATH``: bring an existing events.jsonl history into the store."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, date, datetime

from agent_pipeline.cli import OPTIONAL
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
        filled = round(share * self.width)
        self.stream.write(f"\rimporting [{'#' * filled}{'.' * (self.width - filled)}] {share:6.1%} "
                          f"{done:,}/{total:,} lines")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


# Exit codes of import-events (also in its --help).
EXIT_IMPORTED = 0  # committed: at least one valid event (new or already stored); quarantined lines are reported
EXIT_NOTHING_IMPORTED = 1  # the file was refused (nothing changed), or no line of it was a valid event
EXIT_FAILED = 2  # the import could not run (store busy or unreadable, unexpected error); nothing was committed


def _import(args: argparse.Namespace, settings) -> int:
    from agent_pipeline.store import StoreBusy

    progress = None if args.quiet else ProgressBar()
    if progress:
        print(f"reading and checking {args.path} ...", file=sys.stderr, flush=True)
    try:
        report = import_events(_configured_store(settings, getattr(args, "settings_error", None)), args.path,
                               progress=progress)
    except ImportFileError as exc:
        print(f"agent-pipeline import-events: {exc}", file=sys.stderr)
        return EXIT_NOTHING_IMPORTED
    except StoreBusy as exc:
        print(f"agent-pipeline import-events: {exc}; nothing was imported, try again", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - a plain message, never a traceback; the transaction rolled back
        print(f"agent-pipeline import-events: the import failed and was rolled back: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return EXIT_FAILED
    # committed from here on: nothing below may turn a committed import into a failure
    print(report)
    _where_to_look(report)
    _advise_history_start(report, settings, getattr(args, "settings_error", None))
    _report_to_dagster(report)
    if not report.committed:
        print(f"agent-pipeline import-events: no line of {report.path} is a valid event "
              f"({report.quarantined_total:,} quarantined)", file=sys.stderr)
        return EXIT_NOTHING_IMPORTED
    return EXIT_IMPORTED


def _configured_store(settings, settings_error) -> Store:
    """The store the pipeline reads. A config.toml that does not load still leaves $AGENT_PIPELINE_STORE_URL, which
    wins over it anyway (as the kill-switch commands do); without it the import goes to the home's file, and says
    so, since a ``[store] url`` in the broken file cannot be read."""
    if settings is not None:
        return Store(settings.store_location)
    from agent_pipeline.pipeline_settings import Settings

    location = Settings.from_document({}).store.url  # a wrong URL there fails the import: exit 2, nothing written
    if location:
        return Store(location)
    store = Store.at_home()
    print(f"  note: config.toml does not load ({settings_error}); importing into {store.location}, the home's "
          "file: if its [store] url names a database, mend it and import again there", file=sys.stderr)
    return store


def _where_to_look(report) -> None:
    key = report.file_key.replace("'", "''")
    if report.quarantined_total:
        lines = "line" if report.quarantined_total == 1 else "lines"
        print(f"  {report.quarantined_total:,} {lines} quarantined, see: SELECT * FROM import_quarantine "
              f"WHERE file_key = '{key}' ORDER BY line_number")
    if report.quarantined.get("id_conflict"):
        print("  both versions of each conflict: SELECT q.line_number, q.line, e.* FROM import_quarantine q "
              f"JOIN agent_events e USING (event_id) WHERE q.reason = 'id_conflict' AND q.file_key = '{key}'")
    if report.possible_duplicates:
        print(f"  possible duplicates, see: SELECT * FROM import_possible_duplicates WHERE file_key = '{key}'")


def _advise_history_start(report, settings, settings_error) -> None:
    """Events older than the first agent_rewards partition cannot be backfilled until history_start moves; the
    advised value is checked by the configuration's own validation before it is printed. Advice only: settings
    that do not load leave a note, never a failed import."""
    if not isinstance(report.first_started_at, datetime):
        return
    from agent_pipeline.reward.config import RewardHistoryConfig

    if settings is None:
        print(f"  note: could not read [reward.history] to compare history_start: {settings_error}", file=sys.stderr)
        return
    start = settings.reward.history.history_start
    first_day = report.first_started_at.astimezone(UTC).date()
    if start is None:  # the partitions follow the stored events, from the next load of the code location
        print(f"  note: agent_rewards partitions start on the first stored event's day ({first_day.isoformat()} or "
              "earlier) once the code location reloads (UI: Deployment > Reload, or restart `make run`)")
        return
    if first_day >= date.fromisoformat(start):
        return
    advised = first_day.isoformat()  # zero-padded YYYY-MM-DD, the form the config accepts
    try:
        RewardHistoryConfig(history_start=advised)
    except ValueError:
        return
    print(f"  note: events from {advised} precede the first agent_rewards partition ({start}); to backfill "
          f"them set history_start = \"{advised}\" under [reward.history] in config.toml")


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
                    "again (or after it grew) adds nothing. Afterwards backfill agent_rewards over the days it "
                    "covers.",
        epilog=f"exit status: {EXIT_IMPORTED} imported (quarantined lines are reported), {EXIT_NOTHING_IMPORTED} "
               f"nothing imported (file refused, or no valid line), {EXIT_FAILED} the import could not run")
    cmd.add_argument("path", help="the events.jsonl file")
    cmd.add_argument("--quiet", action="store_true", help="no progress bar")
    cmd.set_defaults(func=_import, settings=OPTIONAL)
