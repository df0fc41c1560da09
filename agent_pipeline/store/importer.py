"""Import an existing ``events.jsonl`` history (the prototype's telemetry format) into ``agent_events``.

The file is read and parsed by DuckDB itself (``read_text`` + its JSON functions), not by a Python loop, so a
million lines take seconds. Every non-blank line ends up in exactly one place: ``agent_events`` (new, or already
there with identical content) or ``import_quarantine`` (with the file, line number, reason and, for a conflict,
the event id). Nothing is dropped silently.

Accepted keys per line (aliases in brackets): ``agent`` (required, an agent name of the registry's form:
``agent_pipeline.agent_names``, else ``invalid_agent_name``), ``reward`` (required unless ``error`` says
the run failed), ``started_at`` [``timestamp``, ``ts``, ``time``], ``latency_seconds`` [``latency_s``,
``latency_ms``, ``lat_ms``], ``cost_usd`` [``cost``], ``error`` [``err``], ``error_type``, ``output``,
``strategy``, ``kind``, ``run_id``, ``event_id`` (a non-empty string; anything else is ignored), ``capital_usd``,
``max_loss_usd``, ``data_age_sec``. A field present (not null) with a value it cannot have (a number field that is
not a finite number >= 0, a text field that is not a string or holds a NUL character, which no PostgreSQL text
can) quarantines the line as ``invalid_field``: storing it as absent would say something else (a string cost
would be repriced as free). A quarantined line keeps a NUL byte as the text ``\\x00``.

A line that repeats a key, itself or in an object at any depth of its ``output`` or ``error``, is quarantined
(``duplicate_key``): DuckDB's reader keeps the first value and Python's ``json`` the last, so the line has no one
meaning. (Fields the importer does not read are not stored, and not checked.)

Encoding: UTF-8; a byte-order mark is dropped; a line that is not valid UTF-8 is quarantined alone
(``invalid_utf8``, its bytes kept as ``\\xNN`` escapes) and the rest of the file imports. A file that is valid UTF-8
takes the fast path (``read_text``); only a file with an invalid byte is read as bytes and decoded line by line.

Timestamps: ISO 8601 text (UTC unless it names a zone) or an epoch number (a JSON number, or a string of one)
whose unit follows from its magnitude: ``|x| < 1e11`` seconds, ``< 1e14`` milliseconds, ``< 1e17``
microseconds, ``< 1e20`` nanoseconds, larger is ``invalid_timestamp``. Today is about 1.7e9 s, 1.7e12 ms, 1.7e15
us, 1.7e18 ns; each boundary is the year 5138 in the coarser unit and 1973 in the finer one, so no date this
accepts can be read in the wrong unit. Integers are converted exactly. A time before 1990-01-01 UTC is
quarantined as ``timestamp_too_old``, one more than ``FUTURE_TOLERANCE`` (5 minutes) after the import started as
``timestamp_in_future``: an event dated 2099 would otherwise be the agent's "last run" for 75 years. A line
without a timestamp is stamped with the file's modification time (the same rules apply to that time) and stored
with source ``'import_undated'`` instead of ``'import'``, so liveness checks can tell a guessed time from a
recorded one.

Event ids: a line's ``event_id`` when it has one; otherwise ``imp_<first 24 hex digits of the line's md5>_<file
key>`` plus ``_<n>`` for the n-th identical line of the file (n > 1). The file key names "the same file": a file imported
before (same resolved path, or same device and inode, so a log rotated by renaming is still itself) whose
recorded complete lines are, line for line, the first lines of this file. So re-importing a file, or the same
file after lines were appended, finds every earlier line under its old id and adds only the new lines, while a
different file gets a new key, so identical lines from two files are two events (two runs that logged the same
thing are not one run). Content alone cannot tell a re-import from a second file with the same lines, and a path
alone breaks on rotation; a file rewritten in place (or copied elsewhere) is a new file. Such id-less lines that
repeat a line imported from another file are kept and recorded in ``import_possible_duplicates``. Stores with
events imported by the earlier version (ids from the line alone, ``imp_<md5>``) keep matching those ids, so
re-importing such a file adds nothing; as before, an identical line of another file also matches them (which
file an old event came from was not recorded).

Conflicts: a line whose event id is already stored, or was used by an earlier line of the same file, is a no-op
when its content is identical on the stored fields (``run_id``, ``agent``, ``strategy``, ``kind``,
``latency_seconds``, ``cost_usd``, ``reward``, ``error``, ``error_type``, ``output``, ``capital_usd``,
``max_loss_usd``, ``data_age_sec``, and ``started_at`` when both sides carry a recorded time) and otherwise
quarantined as ``id_conflict`` with the id and the differing fields, so both versions can be found.

Outputs past the caps of ``agent_pipeline.output_bounds`` (depth 32, 256 KiB of JSON) are quarantined
(``output_too_deep``, ``output_too_large``) rather than imported without them: an event without its output would
be priced by the reward the line claims, which is exactly what repricing exists not to trust, and a quarantined
line can be fixed and imported again.

Backends: the same on every store. The file is staged and classified in DuckDB (``import_staging``,
``import_classify``); on a database store that DuckDB is in-process and reads a bounded copy of the store rows this
file's lines can match, and the rows it writes go into the store in one transaction (``import_target``). A refused
file never reaches the store. The store's write lock is held from the first read of its rows to the commit.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from agent_pipeline.store.connection import Store, begin
from agent_pipeline.store.events import EVENTS
from agent_pipeline.store.import_classify import (
    EVENT_COLUMNS,
    EVENT_ROWS,
    POSSIBLE_DUPLICATE_COLUMNS,
    POSSIBLE_DUPLICATE_ROWS,
    QUARANTINE_COLUMNS,
    QUARANTINE_ROWS,
    bring_known,
    classify,
    has_new_events,
    stage_new,
)
from agent_pipeline.store.import_rules import (  # noqa: F401 (the importer's public names)
    BATCH_LINES,
    EPOCH_UNITS,
    FILE_KEY_CHARS,
    FUTURE_TOLERANCE,
    OLDEST_ACCEPTED,
    REASONS,
    UNDATED_SOURCE,
    ImportFileError,
)
from agent_pipeline.store.import_staging import FileFacts, StagedLines, check_file, prefix_md5, stage_lines, stage_parse
from agent_pipeline.store.import_target import Target, import_target, stages_in_the_store
from agent_pipeline.store.migrations import Schema

IMPORT = Schema("import", requires=(EVENTS,), migrations=[
    """
    CREATE TABLE import_quarantine (
        file VARCHAR NOT NULL,
        line_number BIGINT NOT NULL,
        line_md5 VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        detail VARCHAR,
        line VARCHAR,
        quarantined_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (file, line_number, line_md5)
    );
    """,
    # v2: file identities (so "the same file" survives a rename and growth), the event id a conflicting line
    # carried, and the lines kept although identical to a line imported from another file.
    """
    ALTER TABLE import_quarantine ADD COLUMN file_key VARCHAR;
    ALTER TABLE import_quarantine ADD COLUMN event_id VARCHAR;
    CREATE TABLE import_files (
        file_key VARCHAR PRIMARY KEY,
        path VARCHAR NOT NULL,
        device UBIGINT,
        inode UBIGINT,
        complete_lines BIGINT NOT NULL,
        prefix_md5 VARCHAR NOT NULL,
        first_imported_at TIMESTAMPTZ NOT NULL,
        last_imported_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE import_possible_duplicates (
        file VARCHAR NOT NULL,
        file_key VARCHAR NOT NULL,
        line_number BIGINT NOT NULL,
        event_id VARCHAR NOT NULL,
        same_line_as VARCHAR NOT NULL,
        recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    """,
])


@dataclass
class ImportReport:
    """What one import did; ``str()`` is the summary the CLI prints."""

    path: str
    lines: int = 0
    blank_lines: int = 0
    valid: int = 0
    inserted: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    quarantine_added: int = 0
    stamped_with_file_time: int = 0
    reward_only: int = 0
    failed_runs: int = 0
    possible_duplicates: int = 0
    file_key: str = ""
    known_lines: int = 0  # complete lines of this file imported before (0: a file not seen before)
    first_started_at: datetime | None = None
    last_started_at: datetime | None = None
    seconds: float = 0.0

    @property
    def already_present(self) -> int:
        return self.valid - self.inserted

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def committed(self) -> bool:
        """Whether any line was a valid event (new or already stored): the import did something useful."""
        return self.valid > 0

    def __str__(self) -> str:
        seen = (f"seen before, {self.known_lines:,} lines already imported" if self.known_lines
                else "a file not imported before")
        out = [
            f"imported {self.path}: {self.lines:,} lines in {self.seconds:.2f} s",
            f"  file key:            {self.file_key} ({seen})",
            (f"  valid events:        {self.valid:,} ({self.inserted:,} new, {self.already_present:,} duplicate "
             "or already present, with identical content)"),
            (f"  quarantined lines:   {self.quarantined_total:,} ({self.quarantine_added:,} newly recorded in "
             "import_quarantine)"),
        ]
        for reason, count in sorted(self.quarantined.items()):
            out.append(f"    {reason:<20} {count:>10,}  {REASONS.get(reason, '')}")
        if self.possible_duplicates:
            out.append(f"  possible duplicates: {self.possible_duplicates:,} (kept; identical to lines imported from "
                       "another file, listed in import_possible_duplicates)")
        if self.blank_lines:
            out.append(f"  blank lines skipped: {self.blank_lines:,}")
        if self.stamped_with_file_time:
            out.append(f"  without timestamp:   {self.stamped_with_file_time:,} (stamped with the file's modification "
                       f"time, source '{UNDATED_SOURCE}')")
        if self.reward_only:
            out.append(f"  reward only:         {self.reward_only:,} (no raw output: their recorded reward is kept)")
        if self.failed_runs:
            out.append(f"  failed runs:         {self.failed_runs:,} (no reward)")
        if self.first_started_at is not None and self.last_started_at is not None:
            out.append(f"  events span:         {_minute(self.first_started_at)} .. {_minute(self.last_started_at)} "
                       "UTC (backfill agent_rewards over these days)")
        return "\n".join(out)


def _minute(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else str(value)


Progress = Callable[[int, int], None]


_RECORD_FILE_SQL = """
INSERT INTO import_files (file_key, path, device, inode, complete_lines, prefix_md5, first_imported_at,
                          last_imported_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (file_key) DO UPDATE SET path = excluded.path, device = excluded.device, inode = excluded.inode,
    complete_lines = excluded.complete_lines, prefix_md5 = excluded.prefix_md5,
    last_imported_at = excluded.last_imported_at
"""


def import_events(store: Store, path: str | os.PathLike[str], *, progress: Progress | None = None) -> ImportReport:
    """Import one events.jsonl file; raise ImportFileError (changing nothing) when it cannot be imported."""
    started = datetime.now(UTC)
    source = Path(path).expanduser().resolve()
    facts = check_file(source)
    report = ImportReport(path=str(source))
    if stages_in_the_store(store) and not store.exists():  # a refused file must not create the store: check
        with contextlib.closing(duckdb.connect()) as probe:  # it in memory first (only the first import pays)
            stage_lines(probe, source)

    with import_target(store) as target:
        staged = stage_lines(target.local, source)  # every refusal happens here, before the store is reached
        report.lines, report.blank_lines = staged.lines, staged.blank_lines
        with target.connect() as conn:  # the write lock, from the first read of the store's rows to the commit
            IMPORT.ensure(store, conn)
            report.file_key, report.known_lines = _identify(conn, target.local, facts, staged)
            stage_parse(target.local, report.file_key, facts.mtime, started)
            if progress:
                progress(0, report.lines)
            legacy = bring_known(target, report.file_key, report.path)
            classify(target.local, legacy)
            _summarise(target.local, report)
            new = has_new_events(target.local, report.valid)
            with begin(conn):
                report.quarantine_added = target.write("import_quarantine", QUARANTINE_COLUMNS, QUARANTINE_ROWS,
                                                       [report.path, report.file_key])
                if new:
                    _insert_new(target, report, progress)
                elif progress:
                    progress(report.lines, report.lines)
                conn.execute(_RECORD_FILE_SQL, [report.file_key, report.path, facts.device, facts.inode,
                                                staged.complete_lines, staged.prefix_md5, started, started])
    report.seconds = (datetime.now(UTC) - started).total_seconds()
    return report


def _insert_new(target: Target, report: ImportReport, progress: Progress | None) -> None:
    if stage_new(target, report.file_key):
        report.possible_duplicates = target.write("import_possible_duplicates", POSSIBLE_DUPLICATE_COLUMNS,
                                                  POSSIBLE_DUPLICATE_ROWS, [report.path, report.file_key])
    for low in range(1, report.lines + 2, BATCH_LINES):
        high = min(low + BATCH_LINES - 1, report.lines + 1)
        report.inserted += target.write("agent_events", EVENT_COLUMNS, EVENT_ROWS, [low, high])
        if progress:
            progress(min(high, report.lines), report.lines)


def _identify(conn, local: duckdb.DuckDBPyConnection, facts: FileFacts, staged: StagedLines) -> tuple[str, int]:
    """The file key of this file (see the module docstring) and how many of its lines were imported before."""
    candidates = conn.execute(
        """SELECT file_key, complete_lines, prefix_md5 FROM import_files
           WHERE (path = ? OR (device = ? AND inode = ?)) AND complete_lines <= ?
           ORDER BY complete_lines DESC, last_imported_at DESC""",
        [str(facts.path), facts.device, facts.inode, staged.complete_lines]).fetchall()
    prefixes = {staged.complete_lines: staged.prefix_md5}
    for key, lines, recorded in candidates:
        if lines not in prefixes:
            prefixes[lines] = prefix_md5(local, lines)
        if prefixes[lines] == recorded:
            return key, int(lines)
    return _new_file_key(conn), 0


def _new_file_key(conn) -> str:
    """A key that no recorded file has and no stored event id embeds: two files sharing a key would merge their
    identical lines, and an id already using it would be taken for one of the file's lines."""
    while True:
        key = uuid.uuid4().hex[:FILE_KEY_CHARS]
        if conn.execute("SELECT count(*) FROM import_files WHERE file_key = ?", [key]).fetchone()[0]:
            continue
        if conn.execute(r"SELECT count(*) FROM agent_events WHERE event_id LIKE ('%\_' || ? || '%') ESCAPE '\'",
                        [key]).fetchone()[0]:
            continue
        return key


def _summarise(conn: duckdb.DuckDBPyConnection, report: ImportReport) -> None:
    for reason, count in conn.execute(
            "SELECT reason, count(*) FROM _imp_parsed WHERE reason IS NOT NULL GROUP BY reason").fetchall():
        report.quarantined[reason] = int(count)
    row = conn.execute(f"""
        SELECT count(*) FILTER (WHERE reason IS NULL),
               count(*) FILTER (WHERE reason IS NULL AND source = '{UNDATED_SOURCE}'),
               count(*) FILTER (WHERE reason IS NULL AND output IS NULL AND error IS NULL),
               count(*) FILTER (WHERE reason IS NULL AND error IS NOT NULL),
               min(started_at) FILTER (WHERE reason IS NULL), max(started_at) FILTER (WHERE reason IS NULL)
        FROM _imp_parsed""").fetchone()
    report.valid, report.stamped_with_file_time, report.reward_only, report.failed_runs = map(int, row[:4])
    report.first_started_at, report.last_started_at = row[4], row[5]
