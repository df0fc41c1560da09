"""What an imported line's bytes and timestamp may be: a BOM is dropped, one bad byte costs one line, epoch
units follow from the magnitude, and times before 1990 or in the future are quarantined with their reason."""

import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from agent_pipeline.store.importer import import_events
from agent_pipeline_tests.store.conftest import rows


@pytest.fixture
def store(each_store):
    """The import's semantics are the same on the DuckDB file and on PostgreSQL."""
    return each_store


def test_a_byte_order_mark_is_dropped_and_the_first_line_imports(store, tmp_path):
    path = tmp_path / "events.jsonl"
    body = json.dumps({"agent": "first", "reward": 1.0, "ts": 1704067200}) + "\r\n" + \
        json.dumps({"agent": "second", "reward": 2.0, "ts": 1704067260}) + "\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    report = import_events(store, path)
    assert report.inserted == 2 and report.quarantined == {}
    assert sorted(r[0] for r in rows(store, "SELECT agent FROM agent_events")) == ["first", "second"]
    joined = tmp_path / "joined.jsonl"  # cat of two files that each start with a BOM
    joined.write_bytes(path.read_bytes() + b"\xef\xbb\xbf" + json.dumps({"agent": "third", "reward": 3}).encode())
    assert import_events(store, joined).quarantined == {}


def test_one_invalid_utf8_byte_quarantines_only_its_line(store, tmp_path):
    path = tmp_path / "events.jsonl"
    good = [json.dumps({"agent": f"a{i}", "reward": i, "ts": 1704067200 + i}).encode() for i in range(3)]
    bad = b'{"agent": "caf\xe9", "reward": 1.0}'  # Latin-1, not UTF-8
    path.write_bytes(b"\xef\xbb\xbf" + good[0] + b"\n" + bad + b"\n" + good[1] + b"\n" +
                     '{"agent": "utf8", "strategy": "é\\u00e9", "reward": 1}'.encode() + b"\n" + good[2])
    report = import_events(store, path)
    assert report.quarantined == {"invalid_utf8": 1} and report.inserted == 4
    line_number, line = rows(store, "SELECT line_number, line FROM import_quarantine")[0]
    assert line_number == 2 and "\\xE9" in line and line.startswith("{\\x22agent")
    assert sorted(r[0] for r in rows(store, "SELECT agent FROM agent_events")) == ["a0", "a1", "a2", "utf8"]
    assert rows(store, "SELECT strategy FROM agent_events WHERE agent = 'utf8'") == [("éé",)]
    assert import_events(store, path).inserted == 0  # the slow path is as idempotent as the fast one


STAMP = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("value, expected", [
    (1704067200, STAMP),  # seconds
    (1704067200.25, STAMP + timedelta(milliseconds=250)),
    (1704067200123, STAMP + timedelta(milliseconds=123)),  # milliseconds
    (1704067200123.5, STAMP + timedelta(microseconds=123_500)),
    (1704067200123456, STAMP + timedelta(microseconds=123_456)),  # microseconds (read as ms: year 55970)
    (1704067200123456789, STAMP + timedelta(microseconds=123_456)),  # nanoseconds, exact to the microsecond
    (1.704067200123456789e18, STAMP + timedelta(microseconds=123_456)),  # nanoseconds written as a float
    ("1704067200123", STAMP + timedelta(milliseconds=123)),  # an epoch number written as a string
    ("1704067200123456", STAMP + timedelta(microseconds=123_456)),
    ("2024-01-01T02:00:00+02:00", STAMP),
    ("2024-01-01 00:00:00", STAMP),  # no zone: UTC
])
def test_epoch_units_follow_from_the_magnitude(store, tmp_path, value, expected):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"agent": "a", "reward": 1.0, "ts": value}) + "\n")
    report = import_events(store, path)
    assert report.inserted == 1
    (started_at,), = rows(store, "SELECT started_at FROM agent_events")
    assert abs(started_at - expected) <= timedelta(microseconds=1 if isinstance(value, float) else 0)


@pytest.mark.parametrize("value, reason", [
    ("2099-01-01T00:00:00Z", "timestamp_in_future"),
    (4070908800, "timestamp_in_future"),  # 2099 in epoch seconds
    ("infinity", "timestamp_in_future"),
    ("10000-01-01", "timestamp_in_future"),
    (0, "timestamp_too_old"),  # 1970
    ("1989-12-31T23:59:59Z", "timestamp_too_old"),
    ("0001-01-01", "timestamp_too_old"),
    (-1, "timestamp_too_old"),
    (1e20, "invalid_timestamp"),  # no unit makes this a date
    ("next tuesday", "invalid_timestamp"),
])
def test_times_before_1990_or_in_the_future_are_quarantined_with_a_reason(store, tmp_path, value, reason):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"agent": "a", "reward": 1.0, "ts": value}) + "\n" +
                    json.dumps({"agent": "a", "reward": 1.0, "ts": "1990-01-01T00:00:00Z"}) + "\n")
    report = import_events(store, path)
    assert report.quarantined == {reason: 1} and report.inserted == 1
    assert report.first_started_at == report.last_started_at == datetime(1990, 1, 1, tzinfo=UTC)
    assert rows(store, "SELECT line_number, reason FROM import_quarantine") == [(1, reason)]


def test_the_future_tolerance_is_five_minutes_from_the_start_of_the_import(store, tmp_path):
    now = datetime.now(UTC)
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({"agent": name, "reward": 1.0, "ts": (now + ahead).isoformat()}) + "\n"
                            for name, ahead in (("skew", timedelta(minutes=2)), ("ahead", timedelta(minutes=10)))))
    report = import_events(store, path)
    assert report.quarantined == {"timestamp_in_future": 1}
    assert rows(store, "SELECT agent FROM agent_events") == [("skew",)]


def test_lines_without_a_time_are_stamped_with_the_file_time_only_when_that_time_is_plausible(store, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"agent": "undated", "reward": 1.0}) + "\n" +
                    json.dumps({"agent": "dated", "reward": 1.0, "ts": 1704067200}) + "\n")
    year_2099 = datetime(2099, 1, 1, tzinfo=UTC).timestamp()
    os.utime(path, (year_2099, year_2099))
    report = import_events(store, path)
    assert report.quarantined == {"timestamp_in_future": 1}
    detail, = rows(store, "SELECT detail FROM import_quarantine")[0]
    assert "no timestamp" in detail and "2099" in detail
    assert rows(store, "SELECT agent, source FROM agent_events") == [("dated", "import")]

    os.utime(path, (1_750_000_000, 1_750_000_000))
    report = import_events(store, path)
    assert report.inserted == 1 and report.stamped_with_file_time == 1
    assert rows(store, "SELECT source, started_at FROM agent_events WHERE agent = 'undated'") == [
        ("import_undated", datetime.fromtimestamp(1_750_000_000, UTC))]
