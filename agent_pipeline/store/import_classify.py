"""Classifying the staged lines (``_imp_parsed``) against what the store already holds, and the rows the import
writes. One implementation for every backend: it reads the store only through the bounded copies below (the rows
a line of this file can match), which a ``Target`` brings next to the staged lines, and it writes only through
``Target.write`` (``agent_pipeline.store.import_target``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_pipeline.store.events import COLUMNS, IMPORT_SOURCE
from agent_pipeline.store.import_rules import (
    FILE_KEY_CHARS,
    ID_MD5_CHARS,
    QUARANTINED_LINE_CHARS,
    REASONS,
    UNDATED_SOURCE,
)

if TYPE_CHECKING:
    import duckdb

    from agent_pipeline.store.import_target import Target


@dataclass(frozen=True)
class StoreRows:
    """A bounded copy of store rows: ``query`` over the store's tables lands in the local ``table``. ``keys``, when
    set, is a local table of the keys the query selects by (its ``{keys}``), put beside the store's tables first."""

    table: str
    columns: str
    query: str
    keys: str | None = None
    keys_columns: str = ""


_STORED_FIELDS = ("run_id", "agent", "strategy", "kind", "started_at", "latency_seconds", "cost_usd", "reward",
                  "error", "error_type", "output", "capital_usd", "max_loss_usd", "data_age_sec", "source")
_STORED_TYPES = ("VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "TIMESTAMPTZ", "DOUBLE", "DOUBLE", "DOUBLE",
                 "VARCHAR", "VARCHAR", "JSON", "DOUBLE", "DOUBLE", "DOUBLE", "VARCHAR")
# The stored events under an id some valid line carries (derived, given, or an earlier version's): existence is all
# a derived id needs; a given id's stored version is compared field by field, so it comes whole.
STORED_IDS = StoreRows("_imp_stored_ids", "event_id VARCHAR",
                       "SELECT e.event_id FROM agent_events e JOIN {keys} k ON k.event_id = e.event_id",
                       keys="_imp_wanted_ids", keys_columns="event_id VARCHAR")
STORED_GIVEN = StoreRows(
    "_imp_stored_given",
    ", ".join(f"{c} {t}" for c, t in zip(("event_id", *_STORED_FIELDS), ("VARCHAR", *_STORED_TYPES), strict=True)),
    f"SELECT e.event_id, {', '.join('e.' + c for c in _STORED_FIELDS)} "
    "FROM agent_events e JOIN {keys} k ON k.event_id = e.event_id",
    keys="_imp_given_ids", keys_columns="event_id VARCHAR")
# The recorded files whose key a given id of the derived form names (see _RESERVED_SQL).
KNOWN_FILES = StoreRows("_imp_known_files", "file_key VARCHAR",
                        "SELECT f.file_key FROM import_files f JOIN {keys} k ON k.file_key = f.file_key",
                        keys="_imp_given_keys", keys_columns="file_key VARCHAR")
# This file's quarantined lines (under its key, or its path: the table's primary key). Parameters: file key, path.
KNOWN_QUARANTINE = StoreRows("_imp_known_quarantine",
                             "file VARCHAR, file_key VARCHAR, line_number BIGINT, line_md5 VARCHAR",
                             "SELECT file, file_key, line_number, line_md5 FROM import_quarantine "
                             "WHERE file_key = ? OR file = ?")
# Events imported from another file whose line has the md5 of a new id-less line (the md5 is part of both ids).
# Parameter: this file's key.
SAME_LINES = StoreRows(
    "_imp_same_lines", "event_id VARCHAR",
    rf"SELECT e.event_id FROM agent_events e JOIN {{keys}} k ON substr(e.event_id, 5, {ID_MD5_CHARS}) = k.md5_prefix "
    rf"WHERE e.source IN ('{IMPORT_SOURCE}', '{UNDATED_SOURCE}') AND e.event_id LIKE 'imp\_%' ESCAPE '\' "
    r"AND e.event_id NOT LIKE ('%\_' || ? || '%') ESCAPE '\'",
    keys="_imp_new_prefixes", keys_columns="md5_prefix VARCHAR")

# Stores that hold events imported by the earlier version: their id-less lines were ids of the line alone.
# (Runs on the store itself: one row at most.)
LEGACY_PRESENT_SQL = r"""
SELECT count(*) FROM (SELECT 1 FROM agent_events
                      WHERE event_id LIKE 'imp\_%' ESCAPE '\' AND length(event_id) = 36 LIMIT 1) AS legacy
"""
_LEGACY_IDS = """
SELECT lineno, 'imp_' || CASE WHEN occurrence > 1 THEN md5(line_md5 || '#' || occurrence) ELSE line_md5 END
       AS legacy_id
FROM _imp_parsed WHERE reason IS NULL AND given_event_id IS NULL
"""
_DERIVED_FORM = f"^imp_[0-9a-f]{{{ID_MD5_CHARS}}}_([0-9a-f]{{{FILE_KEY_CHARS}}})(_[0-9]+)?$"
_WANTED_IDS_SQL = "CREATE TEMP TABLE _imp_wanted_ids AS SELECT DISTINCT event_id FROM _imp_parsed WHERE reason IS NULL"
_WANTED_LEGACY_SQL = f"INSERT INTO _imp_wanted_ids SELECT legacy_id FROM ({_LEGACY_IDS}) EXCEPT " \
                     "SELECT event_id FROM _imp_wanted_ids"
_GIVEN_IDS_SQL = """
CREATE TEMP TABLE _imp_given_ids AS
SELECT DISTINCT given_event_id AS event_id FROM _imp_parsed WHERE reason IS NULL AND given_event_id IS NOT NULL
"""
_GIVEN_KEYS_SQL = f"""
CREATE TEMP TABLE _imp_given_keys AS
SELECT DISTINCT regexp_extract(event_id, '{_DERIVED_FORM}', 1) AS file_key FROM _imp_given_ids
WHERE regexp_extract(event_id, '{_DERIVED_FORM}', 1) <> ''
"""
_NEW_PREFIXES_SQL = f"""
CREATE TEMP TABLE _imp_new_prefixes AS
SELECT DISTINCT left(line_md5, {ID_MD5_CHARS}) AS md5_prefix FROM _imp_new WHERE given_event_id IS NULL
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
# A derived id is a content address (this line, in this file, at this occurrence), so a stored event under it is
# this line, imported before: found with a cheap semi-join, not compared field by field (and a later version that
# parses the same line differently does not call it a conflict). A line's own event_id says nothing about its
# content, so a stored event under it is compared on every stored field.
_MATCHED_SQL = """
CREATE TEMP TABLE _imp_matched AS
SELECT p.lineno, p.event_id, '' AS differs, '' AS against
FROM _imp_parsed p
WHERE p.reason IS NULL AND p.given_event_id IS NULL AND p.event_id IN (SELECT event_id FROM _imp_stored_ids)
"""
_MATCHED_GIVEN_SQL = f"""
INSERT INTO _imp_matched
SELECT p.lineno, p.event_id, {_differences_sql("p", "e")}, 'is already stored with'
FROM _imp_parsed p JOIN _imp_stored_given e ON e.event_id = p.event_id
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
_RESERVED_SQL = f"""
UPDATE _imp_parsed SET reason = 'reserved_event_id'
WHERE reason IS NULL AND given_event_id IS NOT NULL
  AND regexp_extract(given_event_id, '{_DERIVED_FORM}', 1) IN (SELECT file_key FROM _imp_known_files)
  AND given_event_id NOT IN (SELECT event_id FROM _imp_stored_ids)
"""
_CONFLICTS_SQL = """
UPDATE _imp_parsed p SET reason = 'id_conflict',
       note = 'event_id ' || m.event_id || ' ' || m.against || ' different ' || m.differs
FROM _imp_matched m WHERE m.lineno = p.lineno AND m.differs <> ''
"""
_LEGACY_REMAP_SQL = f"""
UPDATE _imp_parsed p SET event_id = l.legacy_id
FROM ({_LEGACY_IDS}) l
WHERE l.lineno = p.lineno AND l.legacy_id IN (SELECT event_id FROM _imp_stored_ids)
"""

# The rows the import writes, as queries over the local tables (``Target.write`` puts them into the store).
# Parameters of the quarantine and the possible duplicates: the file's path, its key. NUL characters, which a
# PostgreSQL text cannot hold, are kept as the text \x00 (as an invalid UTF-8 line keeps its bytes).
QUARANTINE_COLUMNS = ("file", "line_number", "line_md5", "reason", "detail", "line", "file_key", "event_id")
QUARANTINE_ROWS = f"""
SELECT $1, lineno, p.line_md5, reason,
       CASE reason {' '.join(f"WHEN '{k}' THEN '{v.replace(chr(39), chr(39) * 2)}'" for k, v in REASONS.items())} END
       || coalesce(': ' || replace(note, chr(0), '\\x00'), '')
       || CASE WHEN source = '{UNDATED_SOURCE}' AND reason IN ('timestamp_too_old', 'timestamp_in_future')
               THEN ' (the line has no timestamp: the file''s modification time, ' || CAST(started_at AS VARCHAR)
                    || ', was used)'
               ELSE '' END,
       replace(left(l.line, {QUARANTINED_LINE_CHARS}), chr(0), '\\x00'), $2,
       CASE WHEN reason = 'id_conflict' THEN replace(event_id, chr(0), '\\x00') END
FROM _imp_parsed p JOIN _imp_lines l USING (lineno) WHERE reason IS NOT NULL
AND NOT EXISTS (SELECT 1 FROM _imp_known_quarantine q
                WHERE (q.file_key = $2 OR q.file = $1) AND q.line_number = p.lineno AND q.line_md5 = p.line_md5)
"""
_NEW_SQL = """
CREATE TEMP TABLE _imp_new AS
SELECT p.* FROM _imp_parsed p LEFT JOIN _imp_matched m USING (lineno) WHERE p.reason IS NULL AND m.lineno IS NULL
"""


# New id-less lines identical to a line imported from another file.
POSSIBLE_DUPLICATE_COLUMNS = ("file", "file_key", "line_number", "event_id", "same_line_as")
POSSIBLE_DUPLICATE_ROWS = f"""
SELECT $1, $2, n.lineno, n.event_id, min(s.event_id)
FROM _imp_new n JOIN _imp_same_lines s ON substr(s.event_id, 5, {ID_MD5_CHARS}) = left(n.line_md5, {ID_MD5_CHARS})
WHERE n.given_event_id IS NULL
GROUP BY n.lineno, n.event_id
"""

# The new events of one batch of lines (parameters: the first and the last line number).
EVENT_COLUMNS = COLUMNS
EVENT_ROWS = f"""
SELECT {', '.join("'imported'" if c == 'origin' else c for c in COLUMNS)}
FROM _imp_new WHERE lineno BETWEEN ? AND ?
"""


def bring_known(target: Target, file_key: str, path: str) -> bool:
    """Copy what of the store the staged lines can match next to them; return whether the store holds events
    imported with the earlier version's ids (then those are among the ids looked up)."""
    local = target.local
    legacy = bool(target.store_conn.execute(LEGACY_PRESENT_SQL).fetchone()[0])
    local.execute(_WANTED_IDS_SQL)
    if legacy:
        local.execute(_WANTED_LEGACY_SQL)
    local.execute(_GIVEN_IDS_SQL)
    local.execute(_GIVEN_KEYS_SQL)
    for rows in (STORED_IDS, STORED_GIVEN, KNOWN_FILES):
        target.fetch(rows)
    target.fetch(KNOWN_QUARANTINE, [file_key, path])
    return legacy


def classify(local: duckdb.DuckDBPyConnection, legacy: bool) -> None:
    """Match valid lines against stored events and earlier lines; quarantine those that conflict."""
    if legacy:
        local.execute(_LEGACY_REMAP_SQL)
    local.execute(_MATCHED_SQL)
    if local.execute("SELECT count(*) FROM _imp_given_ids").fetchone()[0]:
        local.execute(_RESERVED_SQL)
        local.execute(_MATCHED_GIVEN_SQL)
        local.execute(_REPEATS_SQL)  # derived ids are unique within a file; only given ids can repeat
    local.execute(_CONFLICTS_SQL)


def has_new_events(local: duckdb.DuckDBPyConnection, valid: int) -> bool:
    """Whether some valid line is not an event already stored (or an earlier line) with identical content."""
    return valid > local.execute("SELECT count(*) FROM _imp_matched WHERE differs = ''").fetchone()[0]


def stage_new(target: Target, file_key: str) -> bool:
    """``_imp_new``: the valid lines to insert, and, when some are id-less, the stored lines identical to them
    from other files (``_imp_same_lines``). Returns whether there are such id-less lines."""
    local = target.local
    local.execute(_NEW_SQL)
    if not local.execute("SELECT count(*) FROM _imp_new WHERE given_event_id IS NULL").fetchone()[0]:
        return False
    local.execute(_NEW_PREFIXES_SQL)
    target.fetch(SAME_LINES, [file_key])
    return True
