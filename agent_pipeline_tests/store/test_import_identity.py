"""Which imported lines are the same event: conflicts under a known id, and the identity of the file an id-less
line comes from (a re-import or a grown file adds nothing; another file with the same lines is other runs)."""

import hashlib
import json
import os

import pytest

from agent_pipeline.store import append_frame
from agent_pipeline.store.events import EVENTS
from agent_pipeline.store.importer import import_events
from agent_pipeline_tests.store.conftest import rows


@pytest.fixture
def store(each_store):
    """The import's semantics are the same on the DuckDB file and on PostgreSQL."""
    return each_store


def write_lines(path, *objects):
    path.write_text("".join(json.dumps(o) + "\n" for o in objects))


def event_count(store):
    return rows(store, "SELECT count(*) FROM agent_events")[0][0]


def test_different_content_under_a_stored_id_is_quarantined_as_a_conflict_and_both_versions_are_findable(store,
                                                                                                       tmp_path):
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    write_lines(first, {"event_id": "run-7", "agent": "arb", "reward": 0.5, "ts": 1704067200})
    import_events(store, first)
    write_lines(second, {"event_id": "run-7", "agent": "arb", "reward": 0.5, "ts": 1704067200},  # identical
                {"event_id": "run-7", "agent": "arb", "reward": 9.0, "ts": 1704067200},  # same id, other reward
                {"event_id": "run-7", "agent": "arb", "reward": 0.5, "ts": 1704070800})  # same id, other time
    report = import_events(store, second)

    assert report.inserted == 0 and report.already_present == 1
    assert report.quarantined == {"id_conflict": 2}
    assert rows(store, "SELECT reward FROM agent_events WHERE event_id = 'run-7'") == [(0.5,)]
    found = rows(store, """SELECT q.line_number, q.detail, q.line, e.reward FROM import_quarantine q
                           JOIN agent_events e USING (event_id) WHERE q.reason = 'id_conflict' ORDER BY 1""")
    assert [(r[0], r[3]) for r in found] == [(2, 0.5), (3, 0.5)]
    assert "reward" in found[0][1] and "started_at" in found[1][1] and "run-7" in found[0][1]
    assert json.loads(found[0][2])["reward"] == 9.0

    again = import_events(store, second)  # the conflict is recorded once, the identical line stays a no-op
    assert again.quarantine_added == 0 and again.inserted == 0 and event_count(store) == 1


def test_a_repeated_id_within_one_file_keeps_the_first_and_quarantines_a_different_later_line(store, tmp_path):
    path = tmp_path / "events.jsonl"
    write_lines(path, {"event_id": "e1", "agent": "a", "reward": 1, "ts": 1704067200, "output": [{"x": 1}]},
                {"event_id": "e1", "agent": "a", "reward": 1, "ts": 1704067200, "output": [{"x": 1}]},
                {"event_id": "e1", "agent": "a", "reward": 1, "ts": 1704067200, "output": [{"x": 2}]})
    report = import_events(store, path)
    assert report.inserted == 1 and report.already_present == 1 and report.quarantined == {"id_conflict": 1}
    detail = rows(store, "SELECT detail FROM import_quarantine WHERE line_number = 3")[0][0]
    assert "line 1" in detail and "output" in detail


def test_a_line_without_a_time_is_not_a_conflict_because_the_file_was_touched(store, tmp_path):
    path = tmp_path / "events.jsonl"
    write_lines(path, {"event_id": "e1", "agent": "a", "reward": 1})
    import_events(store, path)
    os.utime(path, (1_750_000_000, 1_750_000_000))  # the file's time, the line's only time, changed
    report = import_events(store, path)
    assert report.quarantined == {} and report.already_present == 1


def test_the_same_id_less_line_in_two_files_is_two_runs_reported_as_possible_duplicates(store, tmp_path):
    line = {"agent": "watcher", "reward": 0.0}  # no id, no timestamp: nothing in the line tells the runs apart
    one, two = tmp_path / "host1" / "events.jsonl", tmp_path / "host2" / "events.jsonl"
    for path in (one, two):
        path.parent.mkdir()
        write_lines(path, line, {"agent": "watcher", "reward": 0.0, "ts": 1704067200})
    assert import_events(store, one).inserted == 2
    report = import_events(store, two)
    assert report.inserted == 2 and report.possible_duplicates == 2
    assert event_count(store) == 4
    listed = rows(store, "SELECT file, line_number, event_id, same_line_as FROM import_possible_duplicates "
                         "ORDER BY line_number")
    assert [(r[0], r[1]) for r in listed] == [(str(two), 1), (str(two), 2)]
    ids = {r[0] for r in rows(store, "SELECT event_id FROM agent_events")}
    assert {r[2] for r in listed} <= ids and {r[3] for r in listed} <= ids
    assert import_events(store, two).inserted == 0 and import_events(store, one).inserted == 0


def test_reimporting_a_file_after_it_grew_or_was_rotated_by_renaming_adds_only_new_lines(store, tmp_path):
    path = tmp_path / "events.jsonl"
    same = {"agent": "a", "reward": 1.0}
    write_lines(path, same, same)
    assert import_events(store, path).inserted == 2
    with path.open("a") as fh:  # the log keeps growing, with yet another identical line and a partial last line
        fh.write(json.dumps(same) + "\n" + json.dumps({"agent": "b", "reward": 2.0}) + "\n" + '{"agent": "c", "re')
    report = import_events(store, path)
    assert report.inserted == 2 and report.already_present == 2 and report.known_lines == 2
    assert report.quarantined == {"invalid_json": 1}
    with path.open("a") as fh:  # the writer finishes the line it was writing
        fh.write('ward": 3.0}\n')
    rotated = tmp_path / "events.jsonl.1"
    os.rename(path, rotated)
    report = import_events(store, rotated)
    assert report.inserted == 1 and report.already_present == 4 and report.possible_duplicates == 0
    assert event_count(store) == 5
    path.write_text(json.dumps(same) + "\n")  # a new log at the old path, starting with a line seen before
    report = import_events(store, path)
    assert report.inserted == 1 and report.known_lines == 0 and report.possible_duplicates == 1


def test_a_file_rewritten_in_place_with_other_lines_is_a_new_file(store, tmp_path):
    path = tmp_path / "events.jsonl"
    write_lines(path, {"agent": "a", "reward": 1.0}, {"agent": "b", "reward": 2.0})
    first = import_events(store, path)
    write_lines(path, {"agent": "b", "reward": 2.0}, {"agent": "a", "reward": 1.0})  # same lines, other order
    second = import_events(store, path)
    assert second.file_key != first.file_key and second.inserted == 2 and second.possible_duplicates == 2


def test_events_imported_with_line_only_ids_by_the_earlier_version_are_still_found(store, tmp_path):
    path = tmp_path / "events.jsonl"
    line = json.dumps({"agent": "a", "reward": 1.0, "ts": 1704067200})
    path.write_text(f"{line}\n{line}\n")
    digest = hashlib.md5(line.encode()).hexdigest()
    legacy = [f"imp_{digest}", "imp_" + hashlib.md5(f"{digest}#2".encode()).hexdigest()]
    import pandas as pd

    with store.connect() as conn:
        EVENTS.ensure(store, conn)
    append_frame(store, pd.DataFrame({"event_id": legacy, "run_id": "import", "agent": "a",
                                      "started_at": pd.Timestamp("2024-01-01", tz="UTC"), "reward": 1.0,
                                      "origin": "imported", "source": "import"}))
    report = import_events(store, path)
    assert report.inserted == 0 and report.already_present == 2 and event_count(store) == 2


def test_an_own_event_id_may_not_take_the_derived_id_of_a_line_not_yet_imported(store, tmp_path):
    log = tmp_path / "events.jsonl"
    write_lines(log, {"agent": "a", "reward": 1.0})
    key = import_events(store, log).file_key
    future_line = json.dumps({"agent": "a", "reward": 5.0})
    taken = f"imp_{hashlib.md5(future_line.encode()).hexdigest()[:24]}_{key}"
    other = tmp_path / "other.jsonl"
    write_lines(other, {"event_id": taken, "agent": "a", "reward": -100.0})
    assert import_events(store, other).quarantined == {"reserved_event_id": 1}
    with log.open("a") as fh:
        fh.write(future_line + "\n")
    assert import_events(store, log).inserted == 1
    assert rows(store, "SELECT reward FROM agent_events WHERE event_id = ?", [taken]) == [(5.0,)]


def test_stored_values_come_back_exactly_so_a_reimport_of_own_ids_is_no_conflict(store, tmp_path):
    """On a database store the rows travel as CSV both ways: every double, quote, comma, newline and time must
    survive the trip, or the content check of a re-import would call the stored version different."""
    awkward = [0.1 + 0.2, 5e-324, 1.7976931348623157e308, 2.2250738585072014e-308, 1 / 3, 123456789.12345679]
    texts = ['a,"b"\nc', "\\N", " lead", "é😀", "x\r\ny"]
    path = tmp_path / "events.jsonl"
    write_lines(path, *({"event_id": f"own-{i}", "agent": "a", "reward": value, "cost_usd": value,
                         "ts": f"2024-01-01T00:00:0{i}.123456Z", "strategy": texts[i % len(texts)],
                         "kind": texts[(i + 1) % len(texts)], "output": {"text": texts[i % len(texts)]}}
                        for i, value in enumerate(awkward)))
    assert import_events(store, path).inserted == len(awkward)
    again = import_events(store, path)
    assert again.inserted == 0 and again.quarantined == {} and again.already_present == len(awkward)
    stored = rows(store, "SELECT event_id, reward, strategy, kind FROM agent_events ORDER BY event_id")
    assert stored == [(f"own-{i}", value, texts[i % len(texts)], texts[(i + 1) % len(texts)])
                      for i, value in enumerate(awkward)]
