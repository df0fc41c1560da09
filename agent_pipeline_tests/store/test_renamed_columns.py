"""A store written before ``reward_source`` was renamed (``origin`` in agent_events, ``pricing`` in agent_rewards)
keeps every row and its meaning once the current code opens it, and takes new rows afterwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent_pipeline.reward import RewardConfig
from agent_pipeline.reward.history import REWARDS, read_rewards, recompute_window
from agent_pipeline.store import query_df
from agent_pipeline.store.events import EVENTS, AgentEvent, append_event, read_events
from agent_pipeline.store.migrations import migrate

T0 = datetime(2026, 1, 5, 12, tzinfo=UTC)


def _old_store(store) -> None:
    """The tables as the first schema scripts left them, with an imported and a computed run in them."""
    with store.connect() as conn:
        migrate(conn, EVENTS.component, EVENTS.migrations[:1])
        migrate(conn, REWARDS.component, REWARDS.migrations[:1])
        conn.execute("INSERT INTO agent_events (event_id, run_id, agent, started_at, latency_seconds, reward, "
                     "reward_source, source) VALUES ('old_import', 'r', 'a', ?, 0.1, 0.7, 'imported', 'import')",
                     [T0])
        conn.execute("INSERT INTO agent_events (event_id, run_id, agent, started_at, latency_seconds, reward, "
                     "output) VALUES ('old_run', 'r', 'a', ?, 0.1, 0.0, '[{\"profit_pct\": 0.5}]')",
                     [T0 + timedelta(minutes=1)])
        conn.execute("INSERT INTO agent_rewards (event_id, agent, started_at, reward, reward_source, computed_at, "
                     "failed) VALUES ('old_import', 'a', ?, 0.7, 'recorded', now(), false)", [T0])


def test_an_old_store_keeps_its_rows_and_their_meaning(store):
    _old_store(store)
    events = read_events(store).set_index("event_id")
    assert "reward_source" not in events.columns
    assert events.loc["old_import", "origin"] == "imported" and events.loc["old_run", "origin"] == "computed"
    assert list(read_rewards(store)["pricing"]) == ["recorded"]

    # the imported reward is still recognised as recorded when the window is repriced
    result = recompute_window(store, T0, T0 + timedelta(hours=1), RewardConfig())
    assert result.by_pricing == {"recorded": 1, "recomputed": 1}
    rewards = read_rewards(store).set_index("event_id")
    assert rewards.loc["old_import", "reward"] == 0.7 and rewards.loc["old_run", "reward"] > 0


def test_an_old_store_takes_new_runs_and_keeps_its_time_index(store):
    _old_store(store)
    append_event(store, AgentEvent(run_id="r2", agent="b", started_at=T0 + timedelta(hours=1), latency_seconds=0.2))
    assert read_events(store).set_index("event_id").loc[:, "origin"].tolist() == ["imported", "computed", "computed"]
    with store.connect(read_only=True) as conn:
        indexes = query_df(conn, "SELECT index_name FROM duckdb_indexes() WHERE table_name = 'agent_events'")
    assert indexes["index_name"].tolist() == ["agent_events_started_at"]
