"""Lines that parse but say two things, or name an agent the pipeline cannot have: quarantined with a reason, never
imported as whichever reading the parser happened to keep."""

import json

import pytest

from agent_pipeline.store.importer import REASONS, import_events
from agent_pipeline_tests.store.conftest import rows


@pytest.fixture
def store(each_store):
    """The import's semantics are the same on the DuckDB file and on PostgreSQL."""
    return each_store


def write(tmp_path, lines: list[str]):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


GOOD = json.dumps({"agent": "good", "reward": 1.0, "ts": 1704067200})


@pytest.mark.parametrize("line, key", [
    ('{"agent": "a", "agent": "b", "reward": 1.0}', "agent"),
    ('{"agent": "a", "reward": 1.0, "reward": -5.0}', "reward"),
    ('{"agent": "a", "reward": 1.0, "ts": 1704067200, "ts": 1704067300}', "ts"),
    ('{"agent": "a", "\\u0061gent": "b", "reward": 1.0}', "agent"),  # the same key, escaped
    ('{"agent": "a", "reward": 1.0, "output": [{"profit_pct": 1, "profit_pct": 90}]}', "profit_pct"),
    ('{"agent": "a", "reward": 1.0, "output": {"x": {"y": {"z": 1, "z": 2}}}}', "z"),
])
def test_a_line_with_a_duplicate_key_is_quarantined_at_any_depth(store, tmp_path, line, key):
    report = import_events(store, write(tmp_path, [line, GOOD]))
    assert report.quarantined == {"duplicate_key": 1} and report.inserted == 1
    assert rows(store, "SELECT agent FROM agent_events") == [("good",)]
    (reason, detail), = rows(store, "SELECT reason, detail FROM import_quarantine")
    assert reason == "duplicate_key" and f"key \"{key}\"" in detail


def test_the_same_key_in_different_objects_or_in_a_string_is_no_duplicate(store, tmp_path):
    lines = ['{"agent": "a", "reward": 1.0, "output": [{"x": 1}, {"x": 2}]}',
             '{"agent": "b", "reward": 1.0, "output": {"agent": {"agent": 1}}}',
             '{"agent": "c", "reward": 1.0, "error": null, "output": "\\"agent\\": 1, \\"agent\\": 2"}']
    report = import_events(store, write(tmp_path, lines))
    assert report.quarantined == {} and report.inserted == 3


@pytest.mark.parametrize("agent", [
    "", " ", " momentum", "momentum ", "Momentum", "moment\u0000um", "bad\nname", "bad\tname", "llm-news", "9lives",
    "x" * 64, "x" * 100_000, "café", "a b",
])
def test_an_agent_name_the_registry_could_not_hold_is_quarantined(store, tmp_path, agent):
    report = import_events(store, write(tmp_path, [json.dumps({"agent": agent, "reward": 1.0}), GOOD]))
    assert report.quarantined == {"invalid_agent_name": 1} and report.inserted == 1
    (detail, line), = rows(store, "SELECT detail, line FROM import_quarantine")
    assert "lowercase" in detail and len(detail) < 1_000 and line


def test_agent_names_of_the_registry_form_import(store, tmp_path):
    names = ["a", "momentum", "llm_news_2", "x" * 63]
    report = import_events(store, write(tmp_path, [json.dumps({"agent": n, "reward": 1.0}) for n in names]))
    assert report.quarantined == {} and report.inserted == len(names)


@pytest.mark.parametrize("value", [None, 5, ["a"], {"name": "a"}, True])
def test_an_agent_that_is_no_string_is_still_missing_agent(store, tmp_path, value):
    report = import_events(store, write(tmp_path, [json.dumps({"agent": value, "reward": 1.0}), GOOD]))
    assert report.quarantined == {"missing_agent": 1}


def test_every_reason_is_explained():
    assert {"duplicate_key", "invalid_agent_name"} <= set(REASONS)


@pytest.mark.parametrize("field, value", [
    ("cost_usd", "0.75"), ("cost", -0.5), ("cost_usd", {"usd": 1}), ("latency_ms", "slow"), ("latency_s", -1),
    ("latency_seconds", True), ("data_age_sec", "old"), ("capital_usd", -10), ("max_loss_usd", [300]),
    ("strategy", 5), ("kind", ["signal"]), ("run_id", 7), ("error_type", {"t": 1}),
])
def test_a_field_present_with_an_unusable_value_is_quarantined_not_dropped(store, tmp_path, field, value):
    """A cost written as a string would otherwise be stored as "unknown" and charged nothing at repricing; a
    strategy of 5 would price the signal under the default budget."""
    line = json.dumps({"agent": "a", "reward": 1.0, "ts": 1704067200, field: value})
    report = import_events(store, write(tmp_path, [line, GOOD]))
    assert report.quarantined == {"invalid_field": 1} and report.inserted == 1
    (detail,), = rows(store, "SELECT detail FROM import_quarantine")
    assert field in detail


def test_null_or_absent_optional_fields_are_fine(store, tmp_path):
    line = json.dumps({"agent": "a", "reward": 1.0, "cost_usd": None, "latency_ms": None, "strategy": None,
                       "latency_s": 0, "cost": 0.0})
    assert import_events(store, write(tmp_path, [line])).quarantined == {}


@pytest.mark.parametrize("field", ["strategy", "kind", "run_id", "error_type", "event_id", "error", "err"])
def test_a_text_field_holding_a_nul_character_is_quarantined_on_every_backend(store, tmp_path, field):
    """PostgreSQL cannot hold a NUL in text: storing the line there would fail the whole import, and storing it
    without the field would say something else."""
    line = json.dumps({"agent": "a", "reward": 1.0, "ts": 1704067200, field: "x\u0000y"})
    report = import_events(store, write(tmp_path, [line, GOOD]))
    assert report.quarantined == {"invalid_field": 1} and report.inserted == 1
    (detail, stored), = rows(store, "SELECT detail, line FROM import_quarantine")
    assert f"{field} holds a NUL character" in detail and stored == line


def test_a_nul_byte_in_a_broken_line_is_kept_as_text_in_the_quarantine(store, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(GOOD.encode() + b"\n" + b'{"agent": "a", "reward": 1\x00\x00}\n')
    report = import_events(store, path)
    assert report.quarantined == {"invalid_json": 1} and report.inserted == 1
    assert rows(store, "SELECT line FROM import_quarantine") == [('{"agent": "a", "reward": 1\\x00\\x00}',)]
