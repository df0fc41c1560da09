"""Hostile files, generated: whatever the lines are, every one is counted in exactly one place (imported,
already present, or quarantined with a reason), the stored counts agree with the report, a line with a duplicate
key or a bad agent name never becomes an event, and the command exits with the code its report deserves, never
with a traceback."""

import json
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_pipeline.agent_names import NAME_PATTERN
from agent_pipeline.cli import main as cli_main
from agent_pipeline.store import Store, has_table
from agent_pipeline.store.importer import REASONS, ImportFileError, import_events

NAMES = st.one_of(st.from_regex(NAME_PATTERN, fullmatch=True), st.sampled_from(["", " a", "A", "a-b", "a\u0000"]),
                  st.text(max_size=8))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=6))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(st.text(max_size=3), inner, max_size=3)),
                           max_leaves=8)
TIMES = st.one_of(st.integers(-10**20, 10**21), st.floats(allow_nan=True), st.sampled_from([
    "2024-01-01T00:00:00Z", "2099-01-01", "0001-01-01", "1e10", "yesterday", "1704067200123456"]))


@st.composite
def event_lines(draw) -> str:
    fields = {"agent": draw(NAMES)}
    if draw(st.booleans()):
        fields["reward"] = draw(st.one_of(st.floats(allow_nan=True), SCALARS))
    for key, values in (("ts", TIMES), ("error", SCALARS), ("output", JSON_VALUES), ("event_id", SCALARS),
                        ("latency_ms", SCALARS), ("cost_usd", SCALARS)):
        if draw(st.booleans()):
            fields[key] = draw(values)
    pairs = list(fields.items())
    if pairs and draw(st.integers(0, 4)) == 0:  # repeat a key, with another value
        key = draw(st.sampled_from([k for k, _ in pairs]))
        pairs.append((key, draw(SCALARS)))
    text = "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}"
    return text


TEXT_LINES = st.one_of(event_lines(), event_lines(), event_lines(), JSON_VALUES.map(json.dumps), st.just(""),
                       st.just("   "), st.text(max_size=30))
# as bytes: UTF-8 (lone surrogates too), with a BOM or a CR, or any bytes at all; a line never holds a newline
LINES = st.one_of(TEXT_LINES.map(lambda t: t.encode("utf-8", "surrogatepass")),
                  TEXT_LINES.map(lambda t: "\ufeff" + t + "\r").map(str.encode), st.binary(max_size=24)
                  ).map(lambda b: b.replace(b"\n", b""))


def _python_reading(raw: bytes):
    """(object or None, has a duplicate key) as Python's json reads the line."""
    try:
        line = raw.decode("utf-8").removeprefix("\ufeff").removesuffix("\r")
    except UnicodeDecodeError:
        return None, False
    duplicate = False

    def pairs(items):
        nonlocal duplicate
        keys = [k for k, _ in items]
        duplicate = duplicate or len(keys) != len(set(keys))
        return dict(items)

    try:
        value = json.loads(line, object_pairs_hook=pairs)
    except ValueError:
        return None, False
    return value, duplicate


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lines=st.lists(LINES, min_size=1, max_size=12), again=st.booleans())
def test_every_line_of_any_file_is_counted_once_and_nothing_false_is_stored(lines, again):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        store = Store(Path(tmp) / "store.duckdb")
        try:
            report = import_events(store, path)
        except ImportFileError as exc:  # refused whole: nothing stored, and said why
            assert str(path) in str(exc)
            assert not store.path.exists() or _count(store, "agent_events") == 0
            return
        assert report.lines == len(lines)
        assert report.valid + report.quarantined_total + report.blank_lines == report.lines
        assert set(report.quarantined) <= set(REASONS)
        assert _count(store, "agent_events") == report.inserted
        assert _count(store, "import_quarantine") == report.quarantined_total
        with store.connect() as conn:
            quarantined = dict(conn.execute("SELECT line_number, reason FROM import_quarantine").fetchall())
            agents = {row[0] for row in conn.execute("SELECT agent FROM agent_events").fetchall()}
        assert all(re.fullmatch(NAME_PATTERN, a) for a in agents)
        for number, line in enumerate(lines, start=1):
            value, duplicate = _python_reading(line)
            if duplicate:
                assert quarantined.get(number) == "duplicate_key", (number, line)
            elif isinstance(value, dict) and isinstance(value.get("agent"), str) \
                    and not re.fullmatch(NAME_PATTERN, value["agent"]):
                assert quarantined.get(number) == "invalid_agent_name", (number, line)
        if again:  # a re-import adds nothing and records nothing twice
            second = import_events(store, path)
            assert second.inserted == 0 and second.quarantine_added == 0
            assert second.valid == report.valid and second.quarantined == report.quarantined


def _count(store, table: str) -> int:
    with store.connect() as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] if has_table(conn, table) else 0


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINES, min_size=1, max_size=6))
def test_the_command_exits_as_its_report_says_and_never_with_a_traceback(lines, capsys, tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile") / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    code = cli_main(["import-events", str(path), "--quiet"])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if code == 0:
        assert "valid events:" in out and not re.search(r"valid events:\s+0 ", out)
    else:
        assert code == 1 and err.startswith("agent-pipeline import-events: "), (code, err)


_EVENT_FIELDS = ("event_id, run_id, agent, strategy, kind, started_at, latency_seconds, cost_usd, reward, error, "
                 "error_type, CAST(output AS VARCHAR), capital_usd, max_loss_usd, data_age_sec, origin, source")
_QUARANTINE_FIELDS = "line_number, line_md5, reason, detail, line, event_id"


def _stored(store, key: str) -> tuple[list, list]:
    """Both tables as rows, the file's own key (random per store) written as KEY."""
    def plain(row):
        return tuple(v.replace(key, "KEY") if isinstance(v, str) else v for v in row)

    with store.connect() as conn:
        events = conn.execute(f"SELECT {_EVENT_FIELDS} FROM agent_events ORDER BY event_id").fetchall()
        quarantine = conn.execute(f"SELECT {_QUARANTINE_FIELDS} FROM import_quarantine ORDER BY 1").fetchall()
    return sorted(map(plain, events), key=repr), [plain(r) for r in quarantine]


def _outcome(report) -> tuple:
    return (report.lines, report.blank_lines, report.valid, report.inserted, report.quarantined,
            report.quarantine_added, report.stamped_with_file_time, report.reward_only, report.failed_runs,
            report.first_started_at, report.last_started_at)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINES, min_size=1, max_size=10))
def test_any_file_is_imported_into_postgresql_exactly_as_into_the_duckdb_file(lines, postgres_server):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        outcomes = []
        for store in (Store(Path(tmp) / "store.duckdb"), Store(postgres_server.create_database())):
            try:
                report = import_events(store, path)
            except ImportFileError as exc:
                outcomes.append(("refused", str(exc)))
                continue
            outcomes.append((_outcome(report), _stored(store, report.file_key)))
        assert outcomes[0] == outcomes[1]
