"""The rules of an import that every stage shares: the time bounds, the epoch units, the derived ids' shape, the
file limits and the quarantine reasons (``agent_pipeline.store.importer`` explains them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent_pipeline.agent_names import NAME_RULE
from agent_pipeline.output_bounds import MAX_OUTPUT_BYTES, MAX_OUTPUT_DEPTH
from agent_pipeline.store.events import UNDATED_IMPORT_SOURCE

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
                     ">= 0, a text field that is not a string or holds a NUL character): dropping it would "
                     "store something else",
    "output_too_large": f"`output` is more than {MAX_OUTPUT_BYTES:,} bytes ({MAX_OUTPUT_BYTES // 1024} KiB) of JSON",
    "output_too_deep": f"`output` nests deeper than {MAX_OUTPUT_DEPTH} levels",
    "id_conflict": "`event_id` is already stored, or used by an earlier line, with different content",
    "reserved_event_id": "`event_id` has the form of the ids derived for the lines of an imported file "
                         "(imp_<md5>_<file key>) and no such event is stored",
}

BATCH_LINES = 100_000  # rows per insert statement (and per progress step)
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
