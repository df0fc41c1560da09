"""Reading one events.jsonl into a DuckDB connection: its lines (``_imp_lines``), then each line parsed into the
fields of an event with the reason it cannot be one (``_imp_parsed``). Pure DuckDB over the file: no store table is
read here, so a file refused at this stage has touched no store."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from agent_pipeline.agent_names import NAME_PATTERN
from agent_pipeline.output_bounds import MAX_OUTPUT_BYTES, MAX_OUTPUT_DEPTH
from agent_pipeline.store.events import IMPORT_SOURCE
from agent_pipeline.store.import_rules import (
    EPOCH_UNITS,
    FUTURE_TOLERANCE,
    ID_MD5_CHARS,
    MAX_FILE_BYTES,
    OLDEST_ACCEPTED,
    UNDATED_SOURCE,
    ImportFileError,
)


@dataclass(frozen=True)
class FileFacts:
    """What identifies the file on this host, and its modification time (the time of its undated lines)."""

    path: Path
    device: int
    inode: int
    mtime: datetime


@dataclass(frozen=True)
class StagedLines:
    """The file's line counts and the fingerprint of its complete (newline-terminated) lines."""

    lines: int
    blank_lines: int
    complete_lines: int
    prefix_md5: str


def check_file(path: Path) -> FileFacts:
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
    return FileFacts(path, st.st_dev, st.st_ino, datetime.fromtimestamp(st.st_mtime, UTC))


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
    # a NUL character: no PostgreSQL text can hold it, so no store could keep the line as it says
    checks += [f"CASE WHEN json_type(k.{f}) = 'VARCHAR' AND contains(k.{f} ->> '$', chr(0)) "
               f"THEN '{f} holds a NUL character' END" for f in (*_TEXT_FIELDS, "event_id", "error", "err")]
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

# Whether any line can be an event at all (a JSON object); stops at the first one, so a good file pays nothing.
_ANY_OBJECT_SQL = """
SELECT count(*) FROM (SELECT 1 FROM _imp_lines
                      WHERE utf8 AND line_md5 IS NOT NULL AND left(ltrim(line), 1) = '{' AND json_valid(line) LIMIT 1)
"""


def stage_lines(conn: duckdb.DuckDBPyConnection, source: Path) -> StagedLines:
    """Split the file into ``_imp_lines``. Raise ImportFileError when no line of it can be an event (no
    non-blank line, no UTF-8 line, no JSON object): every refusal happens here, before any store is touched."""
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
    lines, blank = int(lines), int(blank)
    if lines == blank:
        raise ImportFileError(f"{source}: the file has no non-blank lines; nothing to import")
    if not_utf8 == lines - blank:
        raise ImportFileError(f"{source}: not UTF-8 text (no line decodes as UTF-8; is it compressed or UTF-16?); "
                              "nothing was imported")
    if not conn.execute(_ANY_OBJECT_SQL).fetchone()[0]:
        also = f", and {not_utf8:,} lines are not valid UTF-8" if not_utf8 else ""
        raise ImportFileError(f"{source}: not JSON lines (no line is a JSON object{also}); nothing was imported")
    complete = int(last) - 1  # string_split gives one element more than there are newlines
    return StagedLines(lines, blank, complete, prefix_md5(conn, complete))


def prefix_md5(conn: duckdb.DuckDBPyConnection, lines: int) -> str:
    """The fingerprint of the staged file's first ``lines`` lines."""
    return conn.execute(_PREFIX_SQL, [lines]).fetchone()[0]


def stage_parse(conn: duckdb.DuckDBPyConnection, file_key: str, file_time: datetime, started: datetime) -> None:
    """Parse the staged lines into ``_imp_parsed``: one row per non-blank line, its event id under ``file_key``
    and the reason it is quarantined (NULL for a valid event)."""
    conn.execute(_DUPS_SQL)
    conn.execute(_PARSED_SQL, [file_key, file_time, OLDEST_ACCEPTED, started + FUTURE_TOLERANCE])
    if conn.execute("SELECT count(*) FROM _imp_parsed WHERE maybe_duplicate_key").fetchone()[0]:
        conn.execute(_DUPLICATE_KEYS_SQL)
