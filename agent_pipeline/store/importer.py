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
not a finite number >= 0, a text field that is not a string) quarantines the line as ``invalid_field``: storing
it as absent would say something else (a string cost would be repriced as free).

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
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from agent_pipeline.agent_names import NAME_PATTERN, NAME_RULE
from agent_pipeline.output_bounds import MAX_OUTPUT_BYTES, MAX_OUTPUT_DEPTH
from agent_pipeline.store.connection import Store, begin, has_table
from agent_pipeline.store.events import EVENTS, IMPORT_SOURCE, UNDATED_IMPORT_SOURCE
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

FUTURE_TOLERANCE = timedelta(minutes=5)
OLDEST_ACCEPTED = datetime(1990, 1, 1, tzinfo=UTC)
# (upper bound of |value|, what one unit is in microseconds) in order; beyond the last no unit gives a date.
EPOCH_UNITS: tuple[tuple[float, int, str], ...] = (
    (1e11, 1_000_000, "seconds"), (1e14, 1_000, "milliseconds"), (1e17, 1, "microseconds"),
    (1e20, -1_000, "nanoseconds"),  # negative: divide
)

REASONS: dict[str, str] = {
    "invalid_utf8": "not valid UTF-8 (kept here with its bytes escaped as \\xNN)",
    "invalid_json": "not valid JSON",
    "not_an_object": "valid JSON but not an object",
    "duplicate_key": "an object of the line (at any depth) has the same key twice: which value is meant is unknown",
    "missing_agent": "no `agent`, or it is not a string",
    "invalid_agent_name": f"`agent` is not an agent name: {NAME_RULE}, as in the registry",
    "missing_reward": "no `reward` and no `error` saying the run failed",
    "non_numeric_reward": "`reward` is not a number",
    "non_finite_reward": "`reward` is NaN or infinite",
    "invalid_timestamp": "the timestamp is neither ISO 8601 text nor an epoch number of seconds, milliseconds, "
                         "microseconds or nanoseconds (|value| < 1e20)",
    "timestamp_too_old": f"the timestamp is before {OLDEST_ACCEPTED:%Y-%m-%d} UTC",
    "timestamp_in_future": f"the timestamp is more than {FUTURE_TOLERANCE.total_seconds() / 60:g} minutes after "
                           "the import started",
    "invalid_field": "a field is present with a value it cannot have (a number field that is not a finite number "
                     ">= 0, a text field that is not a string): dropping it would store something else",
    "output_too_large": f"`output` is more than {MAX_OUTPUT_BYTES:,} bytes ({MAX_OUTPUT_BYTES // 1024} KiB) of JSON",
    "output_too_deep": f"`output` nests deeper than {MAX_OUTPUT_DEPTH} levels",
    "id_conflict": "`event_id` is already stored, or used by an earlier line, with different content",
    "reserved_event_id": "`event_id` has the form of the ids derived for the lines of an imported file "
                         "(imp_<md5>_<file key>) and no such event is stored",
}

BATCH_LINES = 100_000
MAX_FILE_BYTES = 2 * 2**30  # read whole by DuckDB's read_text: one string value, kept well below its 4 GiB limit
QUARANTINED_LINE_CHARS = 4_000
UNDATED_SOURCE = UNDATED_IMPORT_SOURCE
# Derived ids are 'imp_' + the first 24 hex digits of the line's md5 + '_' + an 8-digit file key: as long as the
# earlier version's 'imp_' + md5 ids (a longer key slows every insert into the primary-key index). Two different
# lines sharing 96 bits of md5 would not be merged silently: the content check quarantines them as a conflict.
ID_MD5_CHARS = 24
FILE_KEY_CHARS = 8


class ImportFileError(ValueError):
    """The file cannot be imported at all (missing, empty, not JSON lines); nothing was changed."""


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


@dataclass(frozen=True)
class _FileFacts:
    path: Path
    device: int
    inode: int
    mtime: datetime


def _check_file(path: Path) -> _FileFacts:
    if not path.exists():
        raise ImportFileError(f"{path}: no such file")
    if not path.is_file():
        raise ImportFileError(f"{path}: not a regular file")
    st = path.stat()
    if st.st_size == 0:
        raise ImportFileError(f"{path}: the file is empty; nothing to import")
    if st.st_size > MAX_FILE_BYTES:
        raise ImportFileError(f"{path}: {st.st_size / 2**30:.1f} GiB is more than one import reads at once "
                              f"({MAX_FILE_BYTES / 2**30:.0f} GiB); split it by lines (split -l 5000000) and "
                              "import the parts in order")
    if not os.access(path, os.R_OK):
        raise ImportFileError(f"{path}: not readable by this user")
    return _FileFacts(path, st.st_dev, st.st_ino, datetime.fromtimestamp(st.st_mtime, UTC))


def _num(expr: str) -> str:
    """A JSON value as a finite DOUBLE, else NULL."""
    return (f"CASE WHEN json_type({expr}) IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT') "
            f"AND isfinite(CAST({expr} AS DOUBLE)) THEN CAST({expr} AS DOUBLE) END")


def _str(expr: str) -> str:
    """A JSON string value as VARCHAR (NULL if absent, not a string, or blank)."""
    return f"CASE WHEN json_type({expr}) = 'VARCHAR' AND left(ltrim({expr} ->> '$'), 1) <> '' THEN {expr} ->> '$' END"


def _first(*exprs: str) -> str:
    return f"coalesce({', '.join(exprs)})"


# Optional fields that must be a finite number >= 0, and those that must be text, when present and not null.
_NUMBER_FIELDS = ("latency_seconds", "latency_s", "latency_ms", "lat_ms", "cost_usd", "cost", "capital_usd",
                  "max_loss_usd", "data_age_sec")
_TEXT_FIELDS = ("strategy", "kind", "run_id", "error_type")


def _invalid_fields_sql() -> str:
    """The names of the fields present with a value they cannot have, comma-separated (NULL when none)."""
    checks = [f"CASE WHEN coalesce(json_type(k.{f}), 'NULL') <> 'NULL' AND NOT coalesce(json_type(k.{f}) IN "
              f"('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT') AND isfinite(TRY_CAST(k.{f} AS DOUBLE)) "
              f"AND TRY_CAST(k.{f} AS DOUBLE) >= 0, false) THEN '{f} ' || left(CAST(k.{f} AS VARCHAR), 40) END"
              for f in _NUMBER_FIELDS]
    checks += [f"CASE WHEN coalesce(json_type(k.{f}), 'NULL') NOT IN ('NULL', 'VARCHAR') "
               f"THEN '{f} ' || left(CAST(k.{f} AS VARCHAR), 40) END" for f in _TEXT_FIELDS]
    return f"nullif(concat_ws(', ', {', '.join(checks)}), '')"


# Stage 1: one row per line (the last row is what follows the final newline). Valid UTF-8 files are split as
# text; a file with an invalid byte is read as a blob, whose VARCHAR form escapes every byte that is not printable
# ASCII (newline, backslash and quote included) as \xNN, so splitting on the text '\x0A' splits on newline bytes
# only, and each line decodes on its own.
_TEXT_SOURCE = """
SELECT generate_subscripts(s, 1) AS lineno, unnest(s) AS raw, true AS utf8
FROM (SELECT string_split(content, chr(10)) AS s FROM read_text(?))
"""
_BLOB_SOURCE = r"""
SELECT lineno, coalesce(decoded, escaped) AS raw, decoded IS NOT NULL AS utf8
FROM (SELECT lineno, escaped, TRY(decode(CAST(escaped AS BLOB))) AS decoded
      FROM (SELECT generate_subscripts(s, 1) AS lineno, unnest(s) AS escaped
            FROM (SELECT string_split(CAST(content AS VARCHAR), '\x0A') AS s FROM read_blob(?))))
"""
# CR of CRLF files and byte-order marks are dropped (a BOM starts any line of files joined with cat).
# (rtrim/trim are several times slower.)
_LINES_SQL = """
CREATE TEMP TABLE _imp_lines AS
SELECT lineno, utf8, line, CASE WHEN left(ltrim(line), 1) <> '' THEN md5(line) END AS line_md5
FROM (SELECT lineno, utf8, CASE WHEN starts_with(cr, chr(65279)) THEN substr(cr, 2) ELSE cr END AS line
      FROM (SELECT lineno, utf8,
                   CASE WHEN ends_with(raw, chr(13)) THEN left(raw, length(raw) - 1) ELSE raw END AS cr
            FROM ({source})))
"""

# The fingerprint of a file's first n lines: an md5 over the lines' md5s, in order.
_PREFIX_SQL = """
SELECT md5(coalesce(string_agg(coalesce(line_md5, ''), ',' ORDER BY lineno), ''))
FROM _imp_lines WHERE lineno <= ?
"""

# Lines that occur more than once get their occurrence number folded into their event id (a narrow, small sort).
_DUPS_SQL = """
CREATE TEMP TABLE _imp_dups AS
SELECT lineno, row_number() OVER (PARTITION BY line_md5 ORDER BY lineno) AS occurrence
FROM _imp_lines
WHERE line_md5 IN (SELECT line_md5 FROM _imp_lines WHERE line_md5 IS NOT NULL GROUP BY 1 HAVING count(*) > 1)
"""

_NUMERIC = "('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')"
_EPOCH_TEXT = r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?"  # an epoch number written as a JSON string
_EPOCH0 = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"


def _epoch_sql(json_expr: str, type_expr: str) -> str:
    """An epoch number as TIMESTAMPTZ, its unit chosen by magnitude (EPOCH_UNITS); integers exactly."""
    magnitude = f"abs(TRY_CAST({json_expr} AS DOUBLE))"
    exact, approx = [], []
    for bound, micros, _ in EPOCH_UNITS:
        scaled = (f"CAST({json_expr} AS HUGEINT) * {micros}" if micros > 0
                  else f"CAST({json_expr} AS HUGEINT) // {-micros}")
        exact.append(f"WHEN {magnitude} < {bound:.0e} THEN TRY({_EPOCH0} + to_microseconds(CAST({scaled} AS BIGINT)))")
        seconds = (f"CAST({json_expr} AS DOUBLE) / {1_000_000 // micros}" if micros > 0
                   else f"CAST({json_expr} AS DOUBLE) / 1e9")
        approx.append(f"WHEN {magnitude} < {bound:.0e} THEN TRY(to_timestamp({seconds}))")
    return (f"CASE WHEN {type_expr} IN ('BIGINT', 'UBIGINT', 'HUGEINT') THEN CASE {' '.join(exact)} END "
            f"WHEN {type_expr} = 'DOUBLE' AND isfinite(TRY_CAST({json_expr} AS DOUBLE)) "
            f"THEN CASE {' '.join(approx)} END END")


def _too_deep_sql(expr: str) -> str:
    """Whether JSON text nests deeper than MAX_OUTPUT_DEPTH, without recursion: strings are removed, brackets kept,
    and each pass of replace('[]', '') removes exactly the innermost level. Only texts with more opening brackets
    than the cap (and so at least twice as many characters) are examined."""
    skeleton = (f"""translate(regexp_replace(regexp_replace({expr}, '"(?:[^"\\\\]|\\\\.)*"', '', 'g'), """
                f"""'[^\\[\\]{{}}]', '', 'g'), '{{}}', '[]')""")
    for _ in range(MAX_OUTPUT_DEPTH):
        skeleton = f"replace({skeleton}, '[]', '')"
    openings = f"strlen({expr}) - strlen(replace(replace({expr}, '[', ''), '{{', ''))"
    return (f"CASE WHEN strlen({expr}) <= {2 * MAX_OUTPUT_DEPTH} THEN false "
            f"WHEN {openings} <= {MAX_OUTPUT_DEPTH} THEN false ELSE strlen({skeleton}) > 0 END")


# Duplicate keys: DuckDB's reader keeps the first value of a repeated key, Python's json (repricing) the last, so
# such a line says two things. Candidates, cheaply: the line's own keys (json_keys, escapes decoded), and the objects
# inside the two stored values that can hold some (``output``, ``error``). In a value without a backslash no
# string holds a quote, so every '":' ends a key, and the key is the text after the quote before it; a value with a
# backslash or with space before a colon is a candidate as it is. Only the candidates are walked with json_tree.
def _nested_duplicate_sql(expr: str) -> str:
    keys = f"""string_split({expr}, '":')"""
    return (f"""(contains({expr}, '{{') AND (contains({expr}, chr(92)) OR regexp_matches({expr}, '"\\s+:') OR """
            f"""list_unique(list_transform({keys}[1:-2], lambda x: reverse(split_part(reverse(x), '"', 1)))) """
            f"""<> len({keys}) - 1))""")


_MAYBE_DUPLICATE_KEY = ("CASE WHEN jtype = 'OBJECT' THEN list_unique(json_keys(line)) <> len(json_keys(line)) "
                        f"OR coalesce({_nested_duplicate_sql('CAST(k.output AS VARCHAR)')}, false) "
                        f"OR coalesce({_nested_duplicate_sql('CAST(coalesce(k.error, k.err) AS VARCHAR)')}, false) "
                        "ELSE false END")


# Stage 2: parse each line once into a struct of JSON values (one per key or alias), then read those.
_KEYS = ("agent", "reward", "started_at", "timestamp", "ts", "time", "latency_seconds", "latency_s", "latency_ms",
         "lat_ms", "cost_usd", "cost", "error", "err", "error_type", "output", "strategy", "kind", "run_id",
         "event_id", "capital_usd", "max_loss_usd", "data_age_sec")
_STRUCTURE = "{" + ", ".join(f'"{k}": "JSON"' for k in _KEYS) + "}"
_TS = "coalesce(k.started_at, k.timestamp, k.ts, k.time)"
# Parameters: file key, the file's modification time, the oldest and the latest accepted time.
_PARSED_SQL = f"""
CREATE TEMP TABLE _imp_parsed AS
WITH p AS (
    SELECT lineno, line, line_md5, utf8, utf8 AND json_valid(line) AS valid FROM _imp_lines WHERE line_md5 IS NOT NULL
), o AS (  -- a valid JSON text is an object exactly when it starts with a brace
    SELECT *, CASE WHEN valid THEN (CASE WHEN left(ltrim(line), 1) = '{{' THEN 'OBJECT' ELSE 'OTHER' END) END
              AS jtype FROM p
), s AS (
    SELECT *, json_transform(CASE WHEN jtype = 'OBJECT' THEN line END, '{_STRUCTURE}') AS k FROM o
), f AS (
    SELECT lineno, line, line_md5, utf8, valid, jtype, {_MAYBE_DUPLICATE_KEY} AS maybe_duplicate_key,
           CASE WHEN json_type(k.agent) = 'VARCHAR' THEN k.agent ->> '$' END AS agent,
           json_type(k.reward) AS reward_type,
           TRY_CAST(k.reward AS DOUBLE) AS reward_raw,
           {_TS} AS ts_json,
           json_type({_TS}) AS ts_type,
           {_first(_num("k.latency_seconds"), _num("k.latency_s"),
                   _num("k.latency_ms") + " / 1000.0", _num("k.lat_ms") + " / 1000.0")} AS latency_seconds,
           {_first(_num("k.cost_usd"), _num("k.cost"))} AS cost_usd,
           coalesce(k.error, k.err) AS error_json,
           {_str("k.error_type")} AS error_type_given,
           CASE WHEN json_type(k.output) <> 'NULL' THEN k.output END AS output,
           {_str("k.strategy")} AS strategy,
           {_str("k.kind")} AS kind,
           {_str("k.run_id")} AS run_id_given,
           {_str("k.event_id")} AS given_event_id,
           {_num("k.capital_usd")} AS capital_usd,
           {_num("k.max_loss_usd")} AS max_loss_usd,
           {_num("k.data_age_sec")} AS data_age_sec,
           {_invalid_fields_sql()} AS invalid_fields
    FROM s
), t AS (
    SELECT *,
           CASE json_type(error_json)
               WHEN 'VARCHAR' THEN nullif(trim(error_json ->> '$'), '')
               WHEN 'BOOLEAN' THEN CASE WHEN CAST(error_json AS BOOLEAN) THEN 'error' END
               WHEN 'NULL' THEN NULL
               ELSE CAST(error_json AS VARCHAR)
           END AS error,
           CASE WHEN ts_type = 'VARCHAR' THEN coalesce(
                    TRY_CAST(ts_json ->> '$' AS TIMESTAMPTZ),
                    CASE WHEN regexp_full_match(ts_json ->> '$', '{_EPOCH_TEXT}')
                         THEN {_epoch_sql("CAST(ts_json ->> '$' AS JSON)", "json_type(CAST(ts_json ->> '$' AS JSON))")}
                         END)
                ELSE {_epoch_sql("ts_json", "ts_type")} END AS ts_parsed
    FROM f
), r AS (
    SELECT *, coalesce(ts_parsed, $2::TIMESTAMPTZ) AS started_at,
           CASE
               WHEN NOT utf8 THEN 'invalid_utf8'
               WHEN NOT valid THEN 'invalid_json'
               WHEN jtype <> 'OBJECT' THEN 'not_an_object'
               WHEN agent IS NULL THEN 'missing_agent'
               WHEN NOT regexp_full_match(agent, '{NAME_PATTERN}') THEN 'invalid_agent_name'
               WHEN ts_type IS NOT NULL AND ts_type <> 'NULL' AND ts_parsed IS NULL THEN 'invalid_timestamp'
               WHEN coalesce(ts_parsed, $2::TIMESTAMPTZ) < $3::TIMESTAMPTZ THEN 'timestamp_too_old'
               WHEN coalesce(ts_parsed, $2::TIMESTAMPTZ) > $4::TIMESTAMPTZ THEN 'timestamp_in_future'
               WHEN strlen(output) > {MAX_OUTPUT_BYTES} THEN 'output_too_large'
               WHEN {_too_deep_sql("output")} THEN 'output_too_deep'
               WHEN invalid_fields IS NOT NULL THEN 'invalid_field'
               -- a failed run (error set) has no reward: whatever it recorded is not checked, and not kept
               WHEN error IS NOT NULL THEN NULL
               WHEN reward_type IS NULL OR reward_type = 'NULL' THEN 'missing_reward'
               WHEN reward_type NOT IN {_NUMERIC} THEN 'non_numeric_reward'
               WHEN NOT isfinite(reward_raw) THEN 'non_finite_reward'
           END AS reason
    FROM t
)
SELECT r.* EXCLUDE (line, error_json, ts_json, reward_raw, error_type_given, run_id_given, invalid_fields),
       CASE WHEN reason = 'invalid_agent_name'
            THEN 'agent ' || CASE WHEN strlen(agent) > 80 THEN CAST(to_json(left(agent, 60)) AS VARCHAR) || ' ... ('
                                  || strlen(agent) || ' bytes)' ELSE CAST(to_json(agent) AS VARCHAR) END
            WHEN reason = 'invalid_field' THEN invalid_fields END AS note,
       coalesce(d.occurrence, 1) AS occurrence,
       coalesce(run_id_given, 'import') AS run_id,
       CASE WHEN error IS NULL THEN reward_raw END AS reward,
       CASE WHEN error IS NOT NULL THEN coalesce(error_type_given, 'ImportedError') END AS error_type,
       CASE WHEN ts_parsed IS NULL THEN '{UNDATED_SOURCE}' ELSE '{IMPORT_SOURCE}' END AS source,
       coalesce(given_event_id, 'imp_' || left(line_md5, {ID_MD5_CHARS}) || '_' || $1
                || CASE WHEN d.occurrence > 1 THEN '_' || d.occurrence ELSE '' END) AS event_id
FROM r LEFT JOIN _imp_dups d USING (lineno)
"""

# The first repeated key of each such line (json_tree decodes escaped keys).
_DUPLICATE_KEYS_SQL = """
UPDATE _imp_parsed p SET reason = 'duplicate_key', note = d.note
FROM (SELECT lineno, arg_min('key ' || CAST(to_json(left(key, 80)) AS VARCHAR) || ' appears ' || n || ' times in ' || path, id)
             AS note
      FROM (SELECT q.lineno, t.key, t.parent, min(t.path) AS path, min(t.id) AS id, count(*) AS n
            FROM _imp_parsed q JOIN _imp_lines l USING (lineno), json_tree(l.line) t
            WHERE q.maybe_duplicate_key AND t.key IS NOT NULL
            GROUP BY q.lineno, t.key, t.parent HAVING count(*) > 1)
      GROUP BY lineno) d
WHERE d.lineno = p.lineno
"""

# The fields that make two versions of an event "identical" (see the module docstring).
_COMPARED = ("run_id", "agent", "strategy", "kind", "latency_seconds", "cost_usd", "reward", "error", "error_type",
             "capital_usd", "max_loss_usd", "data_age_sec")


def _differences_sql(line: str, other: str) -> str:
    """The comma-separated names of the stored fields on which ``line`` and ``other`` differ ('' if none)."""
    checks = [f"CASE WHEN {line}.{c} IS DISTINCT FROM {other}.{c} THEN '{c}' END" for c in _COMPARED]
    checks.append(f"CASE WHEN {line}.output IS DISTINCT FROM CAST({other}.output AS JSON) "
                  f"AND {line}.output IS DISTINCT FROM json({other}.output) THEN 'output' END")
    checks.append(f"CASE WHEN {line}.source = '{IMPORT_SOURCE}' AND {other}.source <> '{UNDATED_SOURCE}' "
                  f"AND {line}.started_at <> {other}.started_at THEN 'started_at' END")
    return f"concat_ws(', ', {', '.join(checks)})"


# A derived id is a content address (this line, in this file, at this occurrence), so a stored event under it is
# this line, imported before: found with a cheap semi-join, not compared field by field (and a later version that
# parses the same line differently does not call it a conflict). A line's own event_id says nothing about its
# content, so a stored event under it is compared on every stored field.
_MATCHED_SQL = """
CREATE TEMP TABLE _imp_matched AS
SELECT p.lineno, p.event_id, '' AS differs, '' AS against
FROM _imp_parsed p
WHERE p.reason IS NULL AND p.given_event_id IS NULL
  AND EXISTS (SELECT 1 FROM agent_events e WHERE e.event_id = p.event_id)
"""
_MATCHED_GIVEN_SQL = f"""
INSERT INTO _imp_matched
SELECT p.lineno, p.event_id, {_differences_sql("p", "e")}, 'is already stored with'
FROM _imp_parsed p JOIN agent_events e ON e.event_id = p.event_id
WHERE p.reason IS NULL AND p.given_event_id IS NOT NULL
"""
# Later lines of the file that reuse a given id not stored: compared with the first valid line that used it.
_REPEATS_SQL = f"""
INSERT INTO _imp_matched
WITH repeated AS (
    SELECT lineno, event_id, min(lineno) OVER (PARTITION BY event_id) AS first_line
    FROM _imp_parsed
    WHERE reason IS NULL AND event_id IN (SELECT event_id FROM _imp_parsed WHERE reason IS NULL
                                          GROUP BY 1 HAVING count(*) > 1)
      AND event_id NOT IN (SELECT event_id FROM _imp_matched)
)
SELECT p.lineno, p.event_id, {_differences_sql("p", "f")}, 'was used on line ' || f.lineno || ' with'
FROM repeated r JOIN _imp_parsed p ON p.lineno = r.lineno JOIN _imp_parsed f ON f.lineno = r.first_line
WHERE r.lineno <> r.first_line
"""
# What keeps derived ids content addresses: a line may not bring, as its own event_id, an id of the form this
# store derives for a recorded file's lines unless that event is stored (a re-import of an export compares as
# usual); it would otherwise occupy the id of a line of that file not imported yet. New file keys are chosen so
# that no stored id embeds them.
_DERIVED_FORM = f"^imp_[0-9a-f]{{{ID_MD5_CHARS}}}_([0-9a-f]{{{FILE_KEY_CHARS}}})(_[0-9]+)?$"
_RESERVED_SQL = f"""
UPDATE _imp_parsed SET reason = 'reserved_event_id'
WHERE reason IS NULL AND given_event_id IS NOT NULL
  AND regexp_extract(given_event_id, '{_DERIVED_FORM}', 1) IN (SELECT file_key FROM import_files)
  AND given_event_id NOT IN (SELECT event_id FROM agent_events)
"""
_CONFLICTS_SQL = """
UPDATE _imp_parsed p SET reason = 'id_conflict',
       note = 'event_id ' || m.event_id || ' ' || m.against || ' different ' || m.differs
FROM _imp_matched m WHERE m.lineno = p.lineno AND m.differs <> ''
"""
# Stores that hold events imported by the earlier version: their id-less lines were ids of the line alone.
_LEGACY_PRESENT_SQL = r"""
SELECT count(*) FROM (SELECT 1 FROM agent_events
                      WHERE event_id LIKE 'imp\_%' ESCAPE '\' AND length(event_id) = 36 LIMIT 1)
"""
_LEGACY_REMAP_SQL = """
UPDATE _imp_parsed p SET event_id = l.legacy_id
FROM (SELECT lineno, 'imp_' || CASE WHEN occurrence > 1 THEN md5(line_md5 || '#' || occurrence) ELSE line_md5 END
             AS legacy_id
      FROM _imp_parsed WHERE reason IS NULL AND given_event_id IS NULL) l
WHERE l.lineno = p.lineno AND l.legacy_id IN (SELECT event_id FROM agent_events)
"""

_QUARANTINE_SQL = f"""
INSERT INTO import_quarantine (file, line_number, line_md5, reason, detail, line, file_key, event_id)
SELECT $1, lineno, p.line_md5, reason,
       CASE reason {' '.join(f"WHEN '{k}' THEN '{v.replace(chr(39), chr(39) * 2)}'" for k, v in REASONS.items())} END
       || coalesce(': ' || note, '')
       || CASE WHEN source = '{UNDATED_SOURCE}' AND reason IN ('timestamp_too_old', 'timestamp_in_future')
               THEN ' (the line has no timestamp: the file''s modification time, ' || CAST(started_at AS VARCHAR)
                    || ', was used)'
               ELSE '' END,
       left(l.line, {QUARANTINED_LINE_CHARS}), $2, CASE WHEN reason = 'id_conflict' THEN event_id END
FROM _imp_parsed p JOIN _imp_lines l USING (lineno) WHERE reason IS NOT NULL
AND NOT EXISTS (SELECT 1 FROM import_quarantine q
                WHERE q.file_key = $2 AND q.line_number = p.lineno AND q.line_md5 = p.line_md5)
ON CONFLICT DO NOTHING
"""

_NEW_SQL = """
CREATE TEMP TABLE _imp_new AS
SELECT p.* FROM _imp_parsed p LEFT JOIN _imp_matched m USING (lineno) WHERE p.reason IS NULL AND m.lineno IS NULL
"""

# New id-less lines identical to a line imported from another file (the line's md5 is part of both ids).
_POSSIBLE_DUPLICATES_SQL = rf"""
INSERT INTO import_possible_duplicates (file, file_key, line_number, event_id, same_line_as)
SELECT $1, $2, n.lineno, n.event_id, min(e.event_id)
FROM _imp_new n JOIN agent_events e ON substr(e.event_id, 5, {ID_MD5_CHARS}) = left(n.line_md5, {ID_MD5_CHARS})
WHERE n.given_event_id IS NULL AND e.source IN ('{IMPORT_SOURCE}', '{UNDATED_SOURCE}')
  AND e.event_id LIKE 'imp\_%' ESCAPE '\' AND e.event_id NOT LIKE ('%\_' || $2 || '%') ESCAPE '\'
GROUP BY n.lineno, n.event_id
"""

_INSERT_SQL = """
INSERT INTO agent_events (event_id, run_id, agent, strategy, kind, started_at, latency_seconds, cost_usd,
    reward, error, error_type, output, capital_usd, max_loss_usd, data_age_sec, origin, source)
SELECT event_id, run_id, agent, strategy, kind, started_at, latency_seconds, cost_usd, reward, error, error_type,
       output, capital_usd, max_loss_usd, data_age_sec, 'imported', source
FROM _imp_new WHERE lineno BETWEEN ? AND ?
"""

_RECORD_FILE_SQL = """
INSERT INTO import_files (file_key, path, device, inode, complete_lines, prefix_md5, first_imported_at,
                          last_imported_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
ON CONFLICT (file_key) DO UPDATE SET path = excluded.path, device = excluded.device, inode = excluded.inode,
    complete_lines = excluded.complete_lines, prefix_md5 = excluded.prefix_md5,
    last_imported_at = excluded.last_imported_at
"""

_STAGING = ("_imp_new", "_imp_matched", "_imp_parsed", "_imp_dups", "_imp_lines")


def import_events(store: Store, path: str | os.PathLike[str], *, progress: Progress | None = None) -> ImportReport:
    """Import one events.jsonl file; raise ImportFileError (changing nothing) when it cannot be imported."""
    if store.shared:  # the import is DuckDB SQL over the store's own tables
        raise ImportFileError(f"import-events works on a DuckDB file store only (it runs DuckDB's file readers "
                              f"over the store's tables), not on {store.location}: import the history into the "
                              f"DuckDB file before moving the store into the database with `agent-pipeline store "
                              f"copy --from <that file> --to <the database URL>`")
    started = datetime.now(UTC)
    source = Path(path).expanduser().resolve()
    facts = _check_file(source)
    report = ImportReport(path=str(source))

    with store.connect() as conn:
        try:
            # temporary tables only until the file is known to be importable: a refused file changes nothing
            complete_lines, prefix = _stage_lines(conn, source, report)
            file_key, report.known_lines = _identify(conn, facts, complete_lines, prefix)
            report.file_key = file_key
            _stage_parse(conn, source, file_key, facts.mtime, started)
        except BaseException:
            _drop_staging(conn)
            raise
        if progress:
            progress(0, report.lines)
        try:
            IMPORT.ensure(store, conn)
            with begin(conn):
                _classify(conn)
                _summarise(conn, report)
                report.quarantine_added = _count_change(
                    conn, "import_quarantine", lambda: conn.execute(_QUARANTINE_SQL, [str(source), file_key]))
                if report.valid > conn.execute("SELECT count(*) FROM _imp_matched WHERE differs = ''").fetchone()[0]:
                    _insert_new(conn, source, file_key, report, progress)
                elif progress:
                    progress(report.lines, report.lines)
                conn.execute(_RECORD_FILE_SQL, [file_key, str(source), facts.device, facts.inode, complete_lines,
                                                prefix, started])
        finally:
            _drop_staging(conn)
    report.seconds = (datetime.now(UTC) - started).total_seconds()
    return report


def _insert_new(conn: duckdb.DuckDBPyConnection, source: Path, file_key: str, report: ImportReport,
                progress: Progress | None) -> None:
    conn.execute(_NEW_SQL)
    if conn.execute("SELECT count(*) FROM _imp_new WHERE given_event_id IS NULL").fetchone()[0]:
        report.possible_duplicates = int(conn.execute(_POSSIBLE_DUPLICATES_SQL, [str(source), file_key]).fetchone()[0])
    for low in range(1, report.lines + 2, BATCH_LINES):
        high = min(low + BATCH_LINES - 1, report.lines + 1)
        report.inserted += int(conn.execute(_INSERT_SQL, [low, high]).fetchone()[0])
        if progress:
            progress(min(high, report.lines), report.lines)


def _drop_staging(conn: duckdb.DuckDBPyConnection) -> None:
    for table in _STAGING:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def _count_change(conn: duckdb.DuckDBPyConnection, table: str, action: Callable[[], object]) -> int:
    before = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    action()
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - before


def _stage_lines(conn: duckdb.DuckDBPyConnection, source: Path, report: ImportReport) -> tuple[int, str]:
    """Split the file into ``_imp_lines``; return its number of complete (newline-terminated) lines and their
    fingerprint. Raise ImportFileError when it has no line to import."""
    try:
        conn.execute(_LINES_SQL.format(source=_TEXT_SOURCE), [str(source)])
    except duckdb.Error:  # not valid UTF-8 somewhere (or unreadable): read the bytes and decode line by line
        conn.execute("DROP TABLE IF EXISTS _imp_lines")
        try:
            conn.execute(_LINES_SQL.format(source=_BLOB_SOURCE), [str(source)])
        except duckdb.Error as exc:
            raise ImportFileError(f"{source}: cannot be read as text lines ({exc})") from exc
    last, lines, blank, not_utf8 = conn.execute(
        "SELECT max(lineno), count(*) FILTER (WHERE line <> '' OR lineno < m), "
        "count(*) FILTER (WHERE line_md5 IS NULL AND (line <> '' OR lineno < m)), count(*) FILTER (WHERE NOT utf8) "
        "FROM _imp_lines, (SELECT max(lineno) AS m FROM _imp_lines)").fetchone()
    report.lines, report.blank_lines = int(lines), int(blank)
    if report.lines == report.blank_lines:
        raise ImportFileError(f"{source}: the file has no non-blank lines; nothing to import")
    if not_utf8 == report.lines - report.blank_lines:
        raise ImportFileError(f"{source}: not UTF-8 text (no line decodes as UTF-8; is it compressed or UTF-16?); "
                              "nothing was imported")
    complete = int(last) - 1  # string_split gives one element more than there are newlines
    return complete, conn.execute(_PREFIX_SQL, [complete]).fetchone()[0]


def _identify(conn: duckdb.DuckDBPyConnection, facts: _FileFacts, complete: int, prefix: str) -> tuple[str, int]:
    """The file key of this file (see the module docstring) and how many of its lines were imported before."""
    if has_table(conn, "import_files"):
        candidates = conn.execute(
            """SELECT file_key, complete_lines, prefix_md5 FROM import_files
               WHERE (path = ? OR (device = ? AND inode = ?)) AND complete_lines <= ?
               ORDER BY complete_lines DESC, last_imported_at DESC""",
            [str(facts.path), facts.device, facts.inode, complete]).fetchall()
        prefixes = {complete: prefix}
        for key, lines, recorded in candidates:
            if lines not in prefixes:
                prefixes[lines] = conn.execute(_PREFIX_SQL, [lines]).fetchone()[0]
            if prefixes[lines] == recorded:
                return key, int(lines)
    return _new_file_key(conn), 0


def _new_file_key(conn: duckdb.DuckDBPyConnection) -> str:
    """A key that no recorded file has and no stored event id embeds: two files sharing a key would merge their
    identical lines, and an id already using it would be taken for one of the file's lines."""
    files = has_table(conn, "import_files")
    events = has_table(conn, "agent_events")
    while True:
        key = uuid.uuid4().hex[:FILE_KEY_CHARS]
        if files and conn.execute("SELECT count(*) FROM import_files WHERE file_key = ?", [key]).fetchone()[0]:
            continue
        if events and conn.execute(r"SELECT count(*) FROM agent_events WHERE event_id LIKE ('%\_' || ? || '%') "
                                   r"ESCAPE '\'", [key]).fetchone()[0]:
            continue
        return key


def _stage_parse(conn: duckdb.DuckDBPyConnection, source: Path, file_key: str, file_time: datetime,
                 started: datetime) -> None:
    conn.execute(_DUPS_SQL)
    conn.execute(_PARSED_SQL, [file_key, file_time, OLDEST_ACCEPTED, started + FUTURE_TOLERANCE])
    if conn.execute("SELECT count(*) FROM _imp_parsed WHERE maybe_duplicate_key").fetchone()[0]:
        conn.execute(_DUPLICATE_KEYS_SQL)
    objects, not_utf8 = conn.execute("SELECT count(*) FILTER (WHERE valid AND jtype = 'OBJECT'), "
                                     "count(*) FILTER (WHERE NOT utf8) FROM _imp_parsed").fetchone()
    if objects == 0:
        also = f", and {not_utf8:,} lines are not valid UTF-8" if not_utf8 else ""
        raise ImportFileError(f"{source}: not JSON lines (no line is a JSON object{also}); nothing was imported")


def _classify(conn: duckdb.DuckDBPyConnection) -> None:
    """Match valid lines against stored events and earlier lines; quarantine those that conflict."""
    if conn.execute(_LEGACY_PRESENT_SQL).fetchone()[0]:
        conn.execute(_LEGACY_REMAP_SQL)
    conn.execute(_MATCHED_SQL)
    if conn.execute("SELECT count(*) FROM _imp_parsed WHERE given_event_id IS NOT NULL").fetchone()[0]:
        conn.execute(_RESERVED_SQL)
        conn.execute(_MATCHED_GIVEN_SQL)
        conn.execute(_REPEATS_SQL)  # derived ids are unique within a file; only given ids can repeat
    conn.execute(_CONFLICTS_SQL)


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
