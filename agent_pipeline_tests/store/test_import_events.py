"""Importing an events.jsonl history: bad lines quarantined with file, line and reason; no valid line lost;
a second import adds nothing; files that cannot be imported change nothing."""

import json
import os
from datetime import UTC, datetime

import pytest

from agent_pipeline.cli import main as cli_main
from agent_pipeline.store import Store
from agent_pipeline.store.importer import ImportFileError, import_events


@pytest.fixture
def store(each_store):
    """The import's semantics are the same on the DuckDB file and on PostgreSQL."""
    return each_store

GOOD = [
    # the prototype's shape: ms latency, epoch seconds, output list
    {"ts": 1704067200, "agent": "arb", "reward": 0.25, "latency_ms": 120, "cost_usd": 0.002, "error": None,
     "output": [{"symbol": "BTC/USDT", "profit_pct": 0.5}]},
    {"timestamp": "2024-01-01T01:00:00Z", "agent": "arb", "reward": -0.1, "latency_seconds": 0.3},  # reward only
    {"started_at": "2024-01-01 02:00:00", "agent": "momentum", "reward": 0, "cost": 0.001, "strategy": "momentum"},
    {"ts": 1704074400000, "agent": "watcher", "reward": None, "error": "TimeoutError: slow"},  # failed, epoch ms
    {"agent": "no_time", "reward": 1.5},  # no timestamp: stamped with the file's time
    {"event_id": "given-1", "ts": 1704078000, "agent": "arb", "reward": 2},
    {"ts": 1704078060, "agent": "failing", "reward": "n/a", "error": {"code": 503}},  # failed: reward not checked
]
BAD = [
    ("{not json", "invalid_json"),
    ('["a", "list"]', "not_an_object"),
    ('{"reward": 1.0}', "missing_agent"),
    ('{"agent": "", "reward": 1.0}', "invalid_agent_name"),
    ('{"agent": "Arb ", "reward": 1.0}', "invalid_agent_name"),
    ('{"agent": "x", "reward": 1.0, "reward": 9.0}', "duplicate_key"),
    ('{"agent": 7, "reward": 1.0}', "missing_agent"),
    ('{"agent": "x"}', "missing_reward"),
    ('{"agent": "x", "reward": "high"}', "non_numeric_reward"),
    ('{"agent": "x", "reward": true}', "non_numeric_reward"),
    ('{"agent": "x", "reward": NaN}', "non_finite_reward"),
    ('{"agent": "x", "reward": Infinity}', "non_finite_reward"),
    ('{"agent": "x", "reward": -Infinity}', "non_finite_reward"),
    ('{"agent": "x", "reward": 1e999}', "non_finite_reward"),
    ('{"agent": "x", "reward": 1, "ts": "yesterday-ish"}', "invalid_timestamp"),
    ('{"agent": "x", "error": "boom", "ts": "not a time"}', "invalid_timestamp"),
]


def write_crafted(path):
    """Good and bad lines interleaved, a blank line and a CRLF line; returns good line numbers and bad ones."""
    lines, good_lines, bad_lines = [], [], {}
    for i in range(max(len(GOOD), len(BAD))):
        if i < len(GOOD):
            lines.append(json.dumps(GOOD[i]))
            good_lines.append(len(lines))
        if i < len(BAD):
            lines.append(BAD[i][0])
            bad_lines[len(lines)] = BAD[i][1]
        if i == 2:
            lines.append("   ")
    lines.append(json.dumps({"ts": 1704081600, "agent": "crlf", "reward": 0.5}) + "\r")
    good_lines.append(len(lines))
    path.write_text("\n".join(lines) + "\n")
    return good_lines, bad_lines


def by_agent_error(rows, agent):
    row = next(r for r in rows if r[0] == agent)
    return row[5], row[1]


def counts(store):
    with store.connect() as conn:
        return (conn.execute("SELECT count(*) FROM agent_events").fetchone()[0],
                conn.execute("SELECT count(*) FROM import_quarantine").fetchone()[0])


def test_crafted_file_quarantines_each_reason_keeps_every_good_line_and_reimport_adds_nothing(store, tmp_path):
    path = tmp_path / "events.jsonl"
    good_lines, bad_lines = write_crafted(path)
    report = import_events(store, path)

    expected_reasons = {}
    for reason in bad_lines.values():
        expected_reasons[reason] = expected_reasons.get(reason, 0) + 1
    assert report.quarantined == expected_reasons
    assert report.valid == report.inserted == len(good_lines) == 8
    assert report.blank_lines == 1
    assert report.lines == len(good_lines) + len(bad_lines) + 1
    assert report.stamped_with_file_time == 1 and report.failed_runs == 2

    with store.connect() as conn:
        quarantined = conn.execute(
            "SELECT file, line_number, reason, line FROM import_quarantine ORDER BY line_number").fetchall()
    assert [(q[1], q[2]) for q in quarantined] == sorted(bad_lines.items())
    assert {q[0] for q in quarantined} == {str(path.resolve())}
    assert quarantined[0][3] == "{not json"

    with store.connect() as conn:
        rows = conn.execute("SELECT agent, reward, started_at, latency_seconds, cost_usd, error, "
                            "CAST(output AS VARCHAR), origin, event_id FROM agent_events "
                            "ORDER BY started_at, agent").fetchall()
    assert sorted(r[0] for r in rows) == ["arb", "arb", "arb", "crlf", "failing", "momentum", "no_time", "watcher"]
    assert by_agent_error(rows, "failing") == ('{"code":503}', None)
    by_reward = {(r[0], r[1]): r for r in rows}
    first = by_reward[("arb", 0.25)]
    assert first[2] == datetime(2024, 1, 1, tzinfo=UTC)
    assert first[3] == pytest.approx(0.12) and first[4] == pytest.approx(0.002)
    assert json.loads(first[6]) == [{"symbol": "BTC/USDT", "profit_pct": 0.5}]
    assert by_reward[("arb", -0.1)][6] is None and by_reward[("arb", -0.1)][3] == pytest.approx(0.3)
    assert by_reward[("momentum", 0.0)][2] == datetime(2024, 1, 1, 2, tzinfo=UTC)
    assert by_reward[("momentum", 0.0)][4] == pytest.approx(0.001)
    failed = by_reward[("watcher", None)]
    assert failed[5] == "TimeoutError: slow" and failed[2] == datetime(2024, 1, 1, 2, tzinfo=UTC)
    no_time = by_reward[("no_time", 1.5)]
    assert abs(no_time[2].timestamp() - os.stat(path).st_mtime) < 1e-3
    assert by_reward[("arb", 2.0)][8] == "given-1"
    assert ("crlf", 0.5) in by_reward
    assert {r[7] for r in rows} == {"imported"}

    before = counts(store)
    again = import_events(store, path)
    assert counts(store) == before
    assert again.inserted == 0 and again.quarantine_added == 0 and again.already_present == 8
    assert again.quarantined == expected_reasons


def test_identical_lines_are_distinct_events_and_a_longer_file_adds_only_the_new_lines(store, tmp_path):
    path = tmp_path / "events.jsonl"
    line = json.dumps({"agent": "a", "reward": 1.0, "ts": 1704067200})
    path.write_text(line + "\n" + line + "\n")
    assert import_events(store, path).inserted == 2
    path.write_text(line + "\n" + line + "\n" + line + "\n" + json.dumps({"agent": "b", "reward": 2}) + "\n")
    report = import_events(store, path)
    assert report.inserted == 2 and report.already_present == 2
    assert counts(store)[0] == 4


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("", "empty"),
    ("\n\n  \n", "no non-blank lines"),
    ("a,b,c\n1,2,3\n", "not JSON lines"),
    ("[1, 2]\n\"text\"\n", "not JSON lines"),
])
def test_unimportable_files_say_so_and_change_nothing(store, tmp_path, content, message):
    first = tmp_path / "first.jsonl"
    first.write_text(json.dumps({"agent": "a", "reward": 1.0}) + "\n")
    import_events(store, first)
    before = counts(store)
    path = tmp_path / "input.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ImportFileError, match=message):
        import_events(store, path)
    assert counts(store) == before


@pytest.mark.parametrize("content", ["a,b,c\n", "\n\n", "[1, 2]\n"], ids=["csv", "blank", "not_objects"])
def test_a_refused_file_does_not_even_create_the_store(pipeline_home, tmp_path, content):
    store = Store.at_home(pipeline_home)  # the database's version: test_import_on_postgres
    path = tmp_path / "input.jsonl"
    path.write_text(content)
    with pytest.raises(ImportFileError):
        import_events(store, path)
    assert not store.exists() and sorted(p.name for p in pipeline_home.iterdir()) == []


def test_a_refused_file_creates_no_tables_in_an_existing_empty_store(pipeline_home, tmp_path):
    store = Store.at_home(pipeline_home)
    with store.connect():
        pass
    path = tmp_path / "input.jsonl"
    path.write_text("a,b,c\n")
    with pytest.raises(ImportFileError, match="not JSON lines"):
        import_events(store, path)
    with store.connect() as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.tables").fetchone()[0] == 0


def test_binary_file_is_rejected_plainly(store, tmp_path):
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00\xff\xfe\x00\x01garbage")
    with pytest.raises(ImportFileError, match="UTF-8"):
        import_events(store, path)


def test_cli_reports_counts_with_a_progress_bar_and_fails_plainly(pipeline_home, tmp_path, capsys):
    path = tmp_path / "events.jsonl"
    write_crafted(path)
    assert cli_main(["import-events", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "8 new" in out and "non_finite_reward" in out and "4" in out and "import_quarantine" in out
    assert "100.0%" in err and "importing [" in err
    assert "set history_start = \"2023-" not in out  # the crafted file starts in 2024 (and the mtime is now)
    assert cli_main(["import-events", str(path), "--quiet"]) == 0
    out, _ = capsys.readouterr()
    assert "0 new, 8 duplicate or already present" in out
    assert cli_main(["import-events", str(tmp_path / "missing.jsonl")]) == 1  # nothing could be imported
    _, err = capsys.readouterr()
    assert "no such file" in err
    assert Store.at_home(pipeline_home).path.exists()


def test_cli_says_how_to_reach_history_before_the_first_partition(pipeline_home, tmp_path, capsys):
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps({"agent": "a", "reward": 1.0, "ts": "2022-03-04T05:06:07Z"}) + "\n")
    assert cli_main(["import-events", str(path), "--quiet"]) == 0
    out, _ = capsys.readouterr()  # no history_start configured: the partitions follow the events on reload
    assert "2022-03-04" in out and "reloads" in out and "history_start =" not in out
    (pipeline_home / "config.toml").write_text('[reward.history]\nhistory_start = "2024-01-01"\n')
    other = tmp_path / "older.jsonl"
    other.write_text(json.dumps({"agent": "b", "reward": 1.0, "ts": "2022-03-04T07:06:07Z"}) + "\n")
    assert cli_main(["import-events", str(other), "--quiet"]) == 0
    out, _ = capsys.readouterr()
    assert 'history_start = "2022-03-04"' in out


def test_cli_records_the_import_as_an_agent_events_materialization(pipeline_home, tmp_path, monkeypatch, capsys):
    import dagster as dg

    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    path = tmp_path / "events.jsonl"
    write_crafted(path)
    assert cli_main(["import-events", str(path), "--quiet"]) == 0
    assert "recorded as a materialization" in capsys.readouterr().out
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("agent_events"))
    assert event.asset_materialization.metadata["inserted"].value == 8
