"""Every reader of the rewards domain (and the events it builds on) on a store that has not got its tables yet.

A sensor or a dashboard reads read-only before anything was written: it must see no rows, with the columns it
expects, and leave the store as it found it (no file created, no table created).
"""

from datetime import UTC, datetime

import pytest

from agent_pipeline.reward.distributions import COLUMNS as DISTRIBUTION_COLUMNS
from agent_pipeline.reward.distributions import read_distributions
from agent_pipeline.reward.history import COLUMNS as REWARD_COLUMNS
from agent_pipeline.reward.history import read_rewards
from agent_pipeline.store import Store, read_events
from agent_pipeline.store.events import COLUMNS as EVENT_COLUMNS

DAY = datetime(2024, 3, 1, tzinfo=UTC)
READERS = [
    pytest.param(lambda s, **kw: read_rewards(s, **kw), REWARD_COLUMNS, id="read_rewards"),
    pytest.param(lambda s, **kw: read_rewards(s, start=DAY, end=DAY.replace(day=2), **kw), REWARD_COLUMNS,
                 id="read_rewards in a window"),
    pytest.param(lambda s, **kw: read_distributions(s, **kw), DISTRIBUTION_COLUMNS, id="read_distributions"),
    pytest.param(lambda s, **kw: read_events(s, **kw), EVENT_COLUMNS, id="read_events"),
]


def _tables(store):
    with store.connect(read_only=True) as conn:
        return {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}


@pytest.mark.parametrize("read,columns", READERS)
def test_read_only_on_a_store_that_does_not_exist_is_empty_and_creates_nothing(tmp_path, read, columns):
    store = Store(tmp_path / "new.duckdb")
    frame = read(store, read_only=True, timeout_s=1.0)
    assert frame.empty and list(frame.columns) == list(columns)
    assert not store.path.exists()


@pytest.mark.parametrize("read,columns", READERS)
def test_read_only_on_a_store_without_the_table_is_empty_and_changes_nothing(tmp_path, read, columns):
    store = Store(tmp_path / "bare.duckdb")
    with store.connect() as conn:  # another domain created the file first
        conn.execute("CREATE TABLE unrelated (x INTEGER)")
    frame = read(store, read_only=True, timeout_s=1.0)
    assert frame.empty and list(frame.columns) == list(columns)
    assert _tables(store) == {"unrelated"}


@pytest.mark.parametrize("read,columns", READERS)
def test_a_writable_read_of_a_new_store_creates_the_tables_and_reads_no_rows(tmp_path, read, columns):
    store = Store(tmp_path / "fresh.duckdb")
    frame = read(store)
    assert frame.empty and set(columns) <= set(frame.columns)
    assert {"agent_events", "schema_versions"} <= _tables(store)
