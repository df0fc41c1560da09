"""The event store: versioned forward migrations, appends, and several writer processes with a reader."""

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from agent_pipeline.store import AgentEvent, Store, StoreBusy, append_event, append_frame, database_errors, read_events
from agent_pipeline.store.events import EVENTS, events_frame
from agent_pipeline.store.migrations import current_version, migrate
from agent_pipeline_tests.store.conftest import address


@pytest.fixture
def store(each_store):
    return each_store


def event(i: int, **kw) -> AgentEvent:
    base = dict(run_id=f"run{i}", agent=f"a{i % 3}", started_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i),
                latency_seconds=0.01 * i, reward=0.1 * i, cost_usd=0.001, output=[{"profit_pct": i}])
    return AgentEvent(**{**base, **kw})


def test_append_and_read_round_trip(store):
    append_event(store, event(1))
    append_event(store, event(2, reward=None, error="ValueError: boom", error_type="ValueError", output=None))
    frame = read_events(store)
    assert list(frame["run_id"]) == ["run1", "run2"]
    assert frame.loc[0, "reward"] == pytest.approx(0.1) and pd.isna(frame.loc[1, "reward"])
    assert frame.loc[1, "error"] == "ValueError: boom"
    assert str(frame["started_at"].dt.tz) == "UTC"
    assert frame.loc[0, "output"] == '[{"profit_pct": 1}]'


def test_non_finite_numbers_are_stored_as_null_not_as_values(store):
    append_event(store, event(1, reward=float("nan"), cost_usd=float("inf")))
    row = read_events(store).iloc[0]
    assert pd.isna(row["reward"]) and pd.isna(row["cost_usd"])


def test_naive_timestamps_are_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        event(1, started_at=datetime(2026, 1, 1))


def test_migrations_are_versioned_and_idempotent(store):
    with store.connect() as conn:
        assert migrate(conn, EVENTS.component, EVENTS.migrations) == len(EVENTS.migrations)
        assert migrate(conn, EVENTS.component, EVENTS.migrations) == len(EVENTS.migrations)
        assert current_version(conn, EVENTS.component) == len(EVENTS.migrations)
        migrate(conn, "extra", ["CREATE TABLE t1 (a INT)", "ALTER TABLE t1 ADD COLUMN b INT"])
        assert current_version(conn, "extra") == 2
        conn.execute("INSERT INTO t1 VALUES (1, 2)")
        with pytest.raises(RuntimeError, match="newer than this code"):
            migrate(conn, "extra", ["CREATE TABLE t1 (a INT)"])


def test_a_failing_migration_rolls_back_and_keeps_the_version(store):
    with store.connect() as conn:
        with pytest.raises(database_errors()):
            migrate(conn, "broken", ["CREATE TABLE ok1 (a INT)", "CREATE TABLE bad (a NOTATYPE)"])
        assert current_version(conn, "broken") == 1


def test_bulk_append_skips_event_ids_already_stored(store):
    frame = events_frame(event(i) for i in range(100))
    assert append_frame(store, frame) == 100
    assert append_frame(store, frame) == 0
    assert len(read_events(store)) == 100
    with pytest.raises(ValueError, match="run_id"):
        append_frame(store, frame.drop(columns=["run_id"]))


def test_readers_of_the_file_get_a_bounded_wait_while_the_store_is_held(pipeline_home):
    store = Store.at_home(pipeline_home)  # PostgreSQL's readers never wait on a writer (next test)
    append_event(store, event(1))
    with store.connect():
        with pytest.raises(StoreBusy, match="store busy"):
            with store.connect(read_only=True, timeout_s=0.1):
                pass


def test_readers_of_the_database_see_committed_rows_while_a_writer_holds_the_store(postgres_url):
    store = Store(postgres_url)  # a DuckDB file lets one process in at a time (previous test)
    append_event(store, event(1))
    with store.connect() as writer:
        writer.execute("BEGIN")
        append_event(store, event(2), conn=writer)  # not committed yet: invisible to readers
        assert list(read_events(store, read_only=True, timeout_s=0.1)["run_id"]) == ["run1"]
        with pytest.raises(database_errors(), match="read-only"):
            with store.connect(read_only=True) as reader:
                reader.execute("DELETE FROM agent_events")
        writer.execute("COMMIT")
    assert list(read_events(store, read_only=True)["run_id"]) == ["run1", "run2"]


def test_read_only_on_a_missing_store_returns_no_rows(tmp_path):
    assert read_events(Store(tmp_path / "none.duckdb"), read_only=True).empty


WRITER = textwrap.dedent("""
    import sys
    from datetime import UTC, datetime
    from agent_pipeline.store import AgentEvent, Store, append_event
    store = Store(sys.argv[1])
    for i in range(int(sys.argv[3])):
        append_event(store, AgentEvent(run_id=f"{sys.argv[2]}-{i}", agent=sys.argv[2], started_at=datetime.now(UTC),
                                       latency_seconds=0.0, reward=1.0))
""")

READER = textwrap.dedent("""
    import sys, time
    from agent_pipeline.store import Store, read_events
    store = Store(sys.argv[1])
    reads = 0
    deadline = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < deadline:
        read_events(store, read_only=True)
        reads += 1
    print(reads)
""")


def test_several_writer_processes_and_a_reader_lose_nothing(store):
    writers, per_writer = 4, 15
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, address(store), f"w{w}", str(per_writer)],
                              stderr=subprocess.PIPE, text=True) for w in range(writers)]
    reader = subprocess.Popen([sys.executable, "-c", READER, address(store), "3"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err
    assert int(out) > 0
    frame = read_events(store)
    assert len(frame) == writers * per_writer
    assert frame.groupby("agent").size().to_dict() == {f"w{w}": per_writer for w in range(writers)}
    assert frame["run_id"].is_unique


def test_a_duplicate_id_in_a_strict_bulk_insert_is_reported_as_such_and_nothing_is_added(store):
    append_frame(store, events_frame([event(1)]))
    again = events_frame([event(2), event(1)])
    again.loc[1, "event_id"] = read_events(store)["event_id"].iloc[0]
    with pytest.raises(Exception, match=r"(?i)duplicate key.*(primary key|_pkey)") as caught:
        append_frame(store, again, ignore_duplicates=False)
    assert "transaction is aborted" not in str(caught.value)  # the cause, not what cleaning up after it hit
    assert list(read_events(store)["run_id"]) == ["run1"]
