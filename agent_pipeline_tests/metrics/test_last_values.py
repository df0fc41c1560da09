"""The last-run and last-value gauges come from live runs (source 'dagster' or 'cli') by start time: never from
imported history, dated or not, never from a run stamped in the future, and never from a maximum the rollup
stored under the old rule (an upgraded store is repaired from its events, its counters kept)."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from agent_pipeline.metrics.collector import take_snapshot
from agent_pipeline.metrics.publish import exposition
from agent_pipeline.store import AgentEvent, append_event
from agent_pipeline.store.importer import import_events
from agent_pipeline_tests.metrics.helpers import samples, value

NOW = datetime.now(UTC)


def run(agent: str, started_at: datetime, *, reward: float, latency: float = 0.2, cost: float = 0.001,
        source: str = "dagster", run_id: str | None = None) -> AgentEvent:
    return AgentEvent(run_id=run_id or f"{agent}-{started_at.timestamp()}", agent=agent, started_at=started_at,
                      latency_seconds=latency, cost_usd=cost, reward=reward, source=source)


def _last(parsed: dict, agent: str) -> tuple:
    return tuple(value(parsed, g, agent=agent) for g in ("agent_last_run_timestamp_seconds", "agent_last_reward",
                                                         "agent_last_latency_seconds", "agent_last_cost_usd"))


def test_imported_history_dated_or_not_never_sets_the_last_gauges(store, tmp_path):
    live = NOW - timedelta(hours=3)
    append_event(store, run("a", live, reward=0.1, latency=0.5, cost=0.002))
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in [
        {"agent": "a", "reward": 0.9, "latency_s": 3.0, "cost": 0.05, "ts": (NOW - timedelta(hours=1)).isoformat()},
        {"agent": "a", "reward": 0.8},  # undated: stamped with the file's time, now
        {"agent": "imported_only", "reward": 1.0, "ts": (NOW - timedelta(minutes=5)).isoformat()},
    ]) + "\n")
    assert import_events(store, path).inserted == 3
    parsed = samples(exposition(agents=["a", "imported_only"]))
    assert _last(parsed, "a") == (pytest.approx(live.timestamp()), 0.1, 0.5, 0.002)
    assert value(parsed, "agent_runs_total", agent="a") == 1  # imports are no runs (test_live_counters)
    assert _last(parsed, "imported_only") == (None, None, None, None)
    assert value(parsed, "agent_runs_total", agent="imported_only") == 0


def test_a_run_of_the_cli_is_live_and_the_latest_start_time_wins(store):
    append_event(store, run("a", NOW - timedelta(minutes=1), reward=0.3, source="cli"))
    append_event(store, run("a", NOW - timedelta(minutes=9), reward=0.7))  # stored later, started earlier
    parsed = samples(exposition())
    assert _last(parsed, "a")[:2] == (pytest.approx((NOW - timedelta(minutes=1)).timestamp()), 0.3)


def test_a_run_stamped_in_the_future_never_sets_the_last_gauges(store):
    append_event(store, run("a", NOW - timedelta(minutes=2), reward=0.1))
    append_event(store, run("a", datetime(2099, 1, 1, tzinfo=UTC), reward=5.0))
    append_event(store, run("a", datetime.now(UTC) + timedelta(hours=1), reward=4.0))
    append_event(store, run("skewed", datetime.now(UTC) + timedelta(seconds=5), reward=0.2))  # clock skew: tolerated
    parsed = samples(exposition())
    assert _last(parsed, "a")[:2] == (pytest.approx((NOW - timedelta(minutes=2)).timestamp()), 0.1)
    assert value(parsed, "agent_runs_total", agent="a") == 3
    assert value(parsed, "agent_last_reward", agent="skewed") == 0.2


def test_a_rollup_pinned_by_a_stored_maximum_is_repaired_on_upgrade_and_keeps_its_counters(store):
    first, second = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    append_event(store, run("a", first, reward=0.1, run_id="first"))
    append_event(store, run("a", second, reward=0.2, run_id="second"))
    take_snapshot(store)
    year_2099_us = int(datetime(2099, 1, 1, tzinfo=UTC).timestamp() * 1e6)
    with store.connect() as conn:  # as the previous rule left a store that once held an event dated 2099
        conn.execute("UPDATE metrics_event_rollup SET last_run_us = ?, last_reward = 9.0, last_reward_us = ?",
                     [year_2099_us, year_2099_us])
        conn.execute("UPDATE metrics_rollup_state SET last_rule = NULL")
        conn.execute("DELETE FROM agent_events WHERE run_id = 'first'")  # e.g. retention; the counters keep it
    parsed = samples(exposition())
    assert _last(parsed, "a")[:2] == (pytest.approx(second.timestamp()), 0.2)
    assert value(parsed, "agent_runs_total", agent="a") == 2
    append_event(store, run("a", NOW, reward=0.3))  # and live runs move it on from there
    parsed = samples(exposition())
    assert _last(parsed, "a")[:2] == (pytest.approx(NOW.timestamp()), 0.3)
    assert value(parsed, "agent_runs_total", agent="a") == 3


def test_a_clock_that_stepped_back_gets_no_last_value_from_its_future(store):
    append_event(store, run("a", NOW - timedelta(hours=2), reward=0.1))
    append_event(store, run("a", NOW - timedelta(seconds=10), reward=0.2))
    assert take_snapshot(store).agents["a"].last["reward"].value == 0.2
    stepped_back = time.time() - 3600  # an hour behind: the run 10 s ago is now in the future
    totals = take_snapshot(store, now=stepped_back).agents["a"]
    assert totals.last_run_us / 1e6 == pytest.approx((NOW - timedelta(hours=2)).timestamp())
    assert totals.last["reward"].value == 0.1 and totals.runs == 2
