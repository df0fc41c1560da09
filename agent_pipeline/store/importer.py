"""Import an existing ``events.jsonl`` history (the seed's telemetry format) into ``agent_events``.

The file is read and parsed by DuckDB itself (``read_text`` + its JSON functions), not by a Python loop, so a
million lines take seconds. Every non-blank line ends up in exactly one place: ``agent_events`` (new or already
there) or ``import_quarantine`` (with the file, line number and reason). Event ids of lines that carry none are
derived from the line's text and its occurrence number, so importing the same file again (or a longer version
of it) adds nothing twice.

Accepted keys per line (aliases in brackets): ``agent`` (required), ``reward`` (required unless ``error`` says
the run failed), ``started_at`` [``timestamp``, ``ts``, ``time``] as ISO text or epoch seconds/milliseconds,
``latency_seconds`` [``latency_s``, ``latency_ms``, ``lat_ms``], ``cost_usd`` [``cost``], ``error`` [``err``],
``error_type``, ``output``, ``strategy``, ``kind``, ``run_id``, ``event_id``, ``capital_usd``, ``max_loss_usd``,
``data_age_sec``. A line without a timestamp is stamped with the file's modification time (and counted).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from agent_pipeline.store.connection import Store
from agent_pipeline.store.events import ensure_schema as ensure_events_schema

COMPONENT = "import"

MIGRATIONS: list[str] = [
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
]

REASONS: dict[str, str] = {
    "invalid_json": "not valid JSON",
    "not_an_object": "valid JSON but not an object",
    "missing_agent": "no `agent`, or it is not a non-empty string",
    "missing_reward": "no `reward` and no `error` saying the run failed",
    "non_numeric_reward": "`reward` is not a number",
    "non_finite_reward": "`reward` is NaN or infinite",
    "invalid_timestamp": "the timestamp is neither ISO text nor epoch seconds/milliseconds",
}

BATCH_LINES = 100_000
MAX_FILE_BYTES = 2 * 2**30  # read whole by DuckDB's read_text: one string value, kept well below its 4 GiB limit
QUARANTINED_LINE_CHARS = 4_000


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
    first_started_at: datetime | None = None
    last_started_at: datetime | None = None
    seconds: float = 0.0

    @property
    def already_present(self) -> int:
        return self.valid - self.inserted

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    def __str__(self) -> str:
        out = [
            f"imported {self.path}: {self.lines:,} lines in {self.seconds:.2f} s",
            f"  valid events:        {self.valid:,} ({self.inserted:,} new, {self.already_present:,} duplicate or "
            "already present)",
            f"  quarantined lines:   {self.quarantined_total:,} ({self.quarantine_added:,} newly recorded in "
            "import_quarantine)",
        ]
        for reason, count in sorted(self.quarantined.items()):
            out.append(f"    {reason:<20} {count:>10,}  {REASONS.get(reason, '')}")
        if self.blank_lines:
            out.append(f"  blank lines skipped: {self.blank_lines:,}")
        if self.stamped_with_file_time:
            out.append(f"  without timestamp:   {self.stamped_with_file_time:,} (stamped with the file's modification "
                       "time)")
        if self.reward_only:
            out.append(f"  reward only:         {self.reward_only:,} (no raw output: their recorded reward is kept)")
        if self.failed_runs:
            out.append(f"  failed runs:         {self.failed_runs:,} (no reward)")
        if self.first_started_at is not None:
            out.append(f"  events span:         {self.first_started_at:%Y-%m-%d %H:%M} .. "
                       f"{self.last_started_at:%Y-%m-%d %H:%M} UTC (backfill agent_rewards over these days)")
        return "\n".join(out)


Progress = Callable[[int, int], None]


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImportFileError(f"{path}: no such file")
    if not path.is_file():
        raise ImportFileError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise ImportFileError(f"{path}: the file is empty; nothing to import")
    if size > MAX_FILE_BYTES:
        raise ImportFileError(f"{path}: {size / 2**30:.1f} GiB is more than one import reads at once "
                              f"({MAX_FILE_BYTES / 2**30:.0f} GiB); split it by lines (split -l 5000000) and "
                              "import the parts in order")


def _num(expr: str) -> str:
    """A JSON value as a finite DOUBLE, else NULL."""
    return (f"CASE WHEN json_type({expr}) IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT') "
            f"AND isfinite(CAST({expr} AS DOUBLE)) THEN CAST({expr} AS DOUBLE) END")


def _str(expr: str) -> str:
    """A JSON string value as VARCHAR (NULL if absent, not a string, or blank)."""
    return f"CASE WHEN json_type({expr}) = 'VARCHAR' AND left(ltrim({expr} ->> '$'), 1) <> '' THEN {expr} ->> '$' END"


def _first(*exprs: str) -> str:
    return f"coalesce({', '.join(exprs)})"


# Stage 1: one row per line, blank lines dropped. CR of CRLF files is stripped.
_LINES_SQL = """
CREATE TEMP TABLE _imp_lines AS
SELECT lineno, line, CASE WHEN left(ltrim(line), 1) <> '' THEN md5(line) END AS line_md5  -- (trim() is slow)
FROM (SELECT lineno,  -- (rtrim(line, chr(13)) is several times slower on a million lines)
             CASE WHEN ends_with(raw, chr(13)) THEN left(raw, length(raw) - 1) ELSE raw END AS line
      FROM (SELECT generate_subscripts(s, 1) AS lineno, unnest(s) AS raw
            FROM (SELECT string_split(content, chr(10)) AS s FROM read_text(?))))
"""

# Lines that occur more than once get their occurrence number folded into their event id (a narrow, small sort).
_DUPS_SQL = """
CREATE TEMP TABLE _imp_dups AS
SELECT lineno, row_number() OVER (PARTITION BY line_md5 ORDER BY lineno) AS occurrence
FROM _imp_lines
WHERE line_md5 IN (SELECT line_md5 FROM _imp_lines WHERE line_md5 IS NOT NULL GROUP BY 1 HAVING count(*) > 1)
"""

# Stage 2: parse each line once into a struct of JSON values (one per key or alias), then read those.
_KEYS = ("agent", "reward", "started_at", "timestamp", "ts", "time", "latency_seconds", "latency_s", "latency_ms",
         "lat_ms", "cost_usd", "cost", "error", "err", "error_type", "output", "strategy", "kind", "run_id",
         "event_id", "capital_usd", "max_loss_usd", "data_age_sec")
_STRUCTURE = "{" + ", ".join(f'"{k}": "JSON"' for k in _KEYS) + "}"
_TS = "coalesce(k.started_at, k.timestamp, k.ts, k.time)"
_PARSED_SQL = f"""
CREATE TEMP TABLE _imp_parsed AS
WITH p AS (
    SELECT lineno, line, line_md5, json_valid(line) AS valid FROM _imp_lines WHERE line_md5 IS NOT NULL
), o AS (  -- a valid JSON text is an object exactly when it starts with a brace
    SELECT *, CASE WHEN valid THEN (CASE WHEN left(ltrim(line), 1) = '{{' THEN 'OBJECT' ELSE 'OTHER' END) END
              AS jtype FROM p
), s AS (
    SELECT *, json_transform(CASE WHEN jtype = 'OBJECT' THEN line END, '{_STRUCTURE}') AS k FROM o
), f AS (
    SELECT lineno, line, line_md5, valid, jtype,
           {_str("k.agent")} AS agent,
           json_type(k.reward) AS reward_type,
           TRY_CAST(k.reward AS DOUBLE) AS reward_raw,
           {_TS} AS ts_json,
           json_type({_TS}) AS ts_type,
           {_first(_num("k.latency_seconds"), _num("k.latency_s"),
                   _num("k.latency_ms") + " / 1000.0", _num("k.lat_ms") + " / 1000.0")} AS latency_seconds,
           {_first(_num("k.cost_usd"), _num("k.cost"))} AS cost_usd,
           coalesce(k.error, k.err) AS error_json,
           {_str("k.error_type")} AS error_type,
           CASE WHEN json_type(k.output) <> 'NULL' THEN k.output END AS output,
           {_str("k.strategy")} AS strategy,
           {_str("k.kind")} AS kind,
           {_str("k.run_id")} AS run_id,
           {_str("k.event_id")} AS given_event_id,
           {_num("k.capital_usd")} AS capital_usd,
           {_num("k.max_loss_usd")} AS max_loss_usd,
           {_num("k.data_age_sec")} AS data_age_sec
    FROM s
), t AS (
    SELECT *,
           CASE json_type(error_json)
               WHEN 'VARCHAR' THEN nullif(trim(error_json ->> '$'), '')
               WHEN 'BOOLEAN' THEN CASE WHEN CAST(error_json AS BOOLEAN) THEN 'error' END
               WHEN 'OBJECT' THEN CAST(error_json AS VARCHAR)
               WHEN 'ARRAY' THEN CAST(error_json AS VARCHAR)
               WHEN 'NULL' THEN NULL
               ELSE CAST(error_json AS VARCHAR)
           END AS error,
           CASE
               WHEN ts_type IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT') THEN
                   CASE WHEN NOT isfinite(TRY_CAST(ts_json AS DOUBLE)) THEN NULL
                        WHEN abs(CAST(ts_json AS DOUBLE)) >= 1e11
                             THEN TRY(to_timestamp(CAST(ts_json AS DOUBLE) / 1000.0))
                        ELSE TRY(to_timestamp(CAST(ts_json AS DOUBLE))) END
               WHEN ts_type = 'VARCHAR' THEN TRY_CAST(ts_json ->> '$' AS TIMESTAMPTZ)
           END AS ts_parsed
    FROM f
), r AS (
    SELECT *,
           CASE
               WHEN NOT valid THEN 'invalid_json'
               WHEN jtype <> 'OBJECT' THEN 'not_an_object'
               WHEN agent IS NULL THEN 'missing_agent'
               WHEN ts_type IS NOT NULL AND ts_type <> 'NULL' AND ts_parsed IS NULL THEN 'invalid_timestamp'
               -- a failed run (error set) has no reward: whatever it recorded is not checked, and not kept
               WHEN error IS NOT NULL THEN NULL
               WHEN reward_type IS NULL OR reward_type = 'NULL' THEN 'missing_reward'
               WHEN reward_type NOT IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT') THEN 'non_numeric_reward'
               WHEN NOT isfinite(reward_raw) THEN 'non_finite_reward'
           END AS reason
    FROM t
)
SELECT r.* EXCLUDE (line, error_json, ts_json),
       CASE WHEN reason IS NOT NULL THEN line END AS line,
       coalesce(given_event_id,
                'imp_' || CASE WHEN d.occurrence > 1 THEN md5(line_md5 || '#' || d.occurrence) ELSE line_md5 END)
           AS event_id
FROM r LEFT JOIN _imp_dups d USING (lineno)
"""

_QUARANTINE_SQL = f"""
INSERT OR IGNORE INTO import_quarantine (file, line_number, line_md5, reason, detail, line)
SELECT ?, lineno, line_md5, reason,
       CASE reason {' '.join(f"WHEN '{k}' THEN '{v.replace(chr(39), chr(39) * 2)}'" for k, v in REASONS.items())} END,
       left(line, {QUARANTINED_LINE_CHARS})
FROM _imp_parsed WHERE reason IS NOT NULL
"""

# INSERT OR IGNORE: an event id repeated in the file is stored once (a duplicate, not a loss).
_INSERT_SQL = """
INSERT OR IGNORE INTO agent_events (event_id, run_id, agent, strategy, kind, started_at, latency_seconds, cost_usd,
    reward, error, error_type, output, capital_usd, max_loss_usd, data_age_sec, reward_source, source)
SELECT event_id, coalesce(run_id, 'import'), agent, strategy, kind, coalesce(ts_parsed, ?::TIMESTAMPTZ),
       latency_seconds, cost_usd,
       CASE WHEN error IS NULL THEN reward_raw END,
       error, CASE WHEN error IS NOT NULL THEN coalesce(error_type, 'ImportedError') END,
       output, capital_usd, max_loss_usd, data_age_sec, 'imported', 'import'
FROM _imp_new WHERE lineno BETWEEN ? AND ?
"""


def import_events(store: Store, path: str | os.PathLike[str], *, progress: Progress | None = None) -> ImportReport:
    """Import one events.jsonl file; raise ImportFileError (changing nothing) when it cannot be imported."""
    started = datetime.now(UTC)
    source = Path(path).expanduser().resolve()
    _check_file(source)
    file_time = datetime.fromtimestamp(source.stat().st_mtime, UTC)
    report = ImportReport(path=str(source))

    with store.connect() as conn:
        try:
            _stage(conn, source, report)  # temporary tables only: a file that cannot be imported changes nothing
        except BaseException:
            _drop_staging(conn)
            raise
        total = report.lines
        if progress:
            progress(0, total)
        ensure_events_schema(store, conn)
        store.ensure_schema(conn, COMPONENT, MIGRATIONS)
        conn.execute("BEGIN TRANSACTION")
        try:
            report.quarantine_added = _count_change(conn, "import_quarantine",
                                                    lambda: conn.execute(_QUARANTINE_SQL, [str(source)]))
            # one anti-join against the stored ids instead of a key lookup per line (re-imports are cheap)
            conn.execute("""CREATE TEMP TABLE _imp_new AS
                            SELECT * FROM _imp_parsed p WHERE reason IS NULL
                            AND NOT EXISTS (SELECT 1 FROM agent_events e WHERE e.event_id = p.event_id)""")
            last_line = total
            for low in range(1, last_line + 1, BATCH_LINES):
                high = min(low + BATCH_LINES - 1, last_line)
                report.inserted += _count_change(
                    conn, "agent_events", lambda: conn.execute(_INSERT_SQL, [file_time, low, high]))
                if progress:
                    progress(high, total)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            _drop_staging(conn)
    report.seconds = (datetime.now(UTC) - started).total_seconds()
    return report


def _drop_staging(conn: duckdb.DuckDBPyConnection) -> None:
    for table in ("_imp_new", "_imp_parsed", "_imp_dups", "_imp_lines"):
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def _count_change(conn: duckdb.DuckDBPyConnection, table: str, action: Callable[[], object]) -> int:
    before = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    action()
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - before


def _stage(conn: duckdb.DuckDBPyConnection, source: Path, report: ImportReport) -> None:
    """Read and classify every line into temp tables; raise ImportFileError if the file is not JSON lines."""
    try:
        conn.execute(_LINES_SQL, [str(source)])
    except duckdb.Error as exc:
        raise ImportFileError(f"{source}: cannot be read as UTF-8 text lines ({exc})") from exc
    lines, blank = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE line_md5 IS NULL) FROM _imp_lines WHERE line <> '' OR lineno < "
        "(SELECT max(lineno) FROM _imp_lines)").fetchone()
    report.lines, report.blank_lines = int(lines), int(blank)
    if report.lines == report.blank_lines:
        raise ImportFileError(f"{source}: the file has no non-blank lines; nothing to import")
    conn.execute(_DUPS_SQL)
    conn.execute(_PARSED_SQL)
    objects = conn.execute("SELECT count(*) FROM _imp_parsed WHERE valid AND jtype = 'OBJECT'").fetchone()[0]
    if objects == 0:
        raise ImportFileError(f"{source}: not JSON lines (no line is a JSON object); nothing was imported")
    for reason, count in conn.execute(
            "SELECT reason, count(*) FROM _imp_parsed WHERE reason IS NOT NULL GROUP BY reason").fetchall():
        report.quarantined[reason] = int(count)
    row = conn.execute("""
        SELECT count(*) FILTER (WHERE reason IS NULL),
               count(*) FILTER (WHERE reason IS NULL AND ts_parsed IS NULL),
               count(*) FILTER (WHERE reason IS NULL AND output IS NULL AND error IS NULL),
               count(*) FILTER (WHERE reason IS NULL AND error IS NOT NULL),
               min(ts_parsed) FILTER (WHERE reason IS NULL), max(ts_parsed) FILTER (WHERE reason IS NULL)
        FROM _imp_parsed""").fetchone()
    report.valid, report.stamped_with_file_time, report.reward_only, report.failed_runs = map(int, row[:4])
    report.first_started_at, report.last_started_at = row[4], row[5]
