"""Run counters and histograms count live runs only, like the last-value gauges: an imported history is no run of
the pipeline, so it neither inflates ``increase()`` nor creates series. Label sets come from the registry's agents
and the agents with live runs; the counters never go down, also across the upgrade from the rule that counted
every stored event."""

import json
from datetime import UTC, datetime, timedelta

from agent_pipeline.metrics.collector import take_snapshot
from agent_pipeline.metrics.publish import exposition
from agent_pipeline.store import AgentEvent, append_event
from agent_pipeline.store.importer import import_events
from agent_pipeline_tests.metrics.helpers import distribution, loop_tables, samples, value

NOW = datetime.now(UTC)


def live(agent: str, i: int, *, reward: float = 0.1, error: str | None = None) -> AgentEvent:
    return AgentEvent(run_id=f"{agent}-{i}", agent=agent, started_at=NOW - timedelta(minutes=30 - i),
                      latency_seconds=0.2, cost_usd=0.001, reward=None if error else reward, error=error)


def import_lines(store, tmp_path, lines, name="events.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return import_events(store, path)


def history(agent: str, n: int, *, errors: int = 0):
    return [{"agent": agent, "reward": 0.5, "latency_s": 1.0, "cost": 0.01,
             "ts": (NOW - timedelta(days=2, seconds=i)).isoformat(), **({"error": "boom"} if i < errors else {})}
            for i in range(n)]


def agent_series(parsed: dict) -> set[str]:
    return {dict(labels).get("agent") for (_name, labels) in parsed if "agent" in dict(labels)}


def test_imported_history_counts_no_run_error_or_observation(store, tmp_path):
    append_event(store, live("momentum", 1))
    append_event(store, live("momentum", 2, error="TimeoutError"))
    before = samples(exposition(agents=["momentum"]))
    assert import_lines(store, tmp_path, history("momentum", 500, errors=100)).inserted == 500
    after = samples(exposition(agents=["momentum"]))
    for name in ("agent_runs_total", "agent_errors_total", "agent_latency_seconds_count", "agent_cost_usd_count",
                 "agent_reward_count", "agent_latency_seconds_sum"):
        assert value(after, name, agent="momentum") == value(before, name, agent="momentum"), name
    assert value(after, "agent_runs_total", agent="momentum") == 2
    assert value(after, "agent_errors_total", agent="momentum") == 1


def test_ten_thousand_made_up_agents_in_an_import_create_no_series(store, tmp_path):
    append_event(store, live("momentum", 1))
    lines = [{"agent": f"fake_{i:05d}", "reward": 0.1, "ts": (NOW - timedelta(days=1, seconds=i)).isoformat()}
             for i in range(10_000)]
    assert import_lines(store, tmp_path, lines).inserted == 10_000
    loop_tables(store)
    with store.connect() as conn:  # their reward distributions are computed like any agent's
        for i in range(0, 10_000, 100):
            distribution(conn, f"fake_{i:05d}", "last_100", mean=0.1, std=0.01, win_rate=1.0)
        distribution(conn, "momentum", "last_100", mean=0.1, std=0.01, win_rate=1.0)
    parsed = samples(exposition(agents=["momentum", "regime_watcher"]))
    assert agent_series(parsed) == {"momentum", "regime_watcher"}
    assert value(parsed, "agent_reward_rolling_mean", agent="momentum", window="last_100") == 0.1
    assert value(parsed, "agent_runs_total", agent="regime_watcher") == 0  # registered: at 0 before its first run
    snap = take_snapshot(store, agents=["momentum"])
    assert set(snap.agents) == {"momentum"}


def test_a_registered_agent_with_imported_history_only_is_exported_at_zero(store, tmp_path):
    import_lines(store, tmp_path, history("llm_news", 20))
    parsed = samples(exposition(agents=["llm_news"]))
    assert value(parsed, "agent_runs_total", agent="llm_news") == 0
    assert value(parsed, "agent_last_run_timestamp_seconds", agent="llm_news") is None
    assert agent_series(samples(exposition())) == set()  # not registered, never run live: no series at all


def test_the_upgrade_from_counting_every_event_keeps_the_counters_and_then_counts_live_runs(store, tmp_path):
    append_event(store, live("momentum", 1))
    import_lines(store, tmp_path, history("momentum", 30, errors=3) + history("ghost", 5))
    take_snapshot(store)
    with store.connect() as conn:  # as the previous rule left it: every stored event counted
        conn.execute("UPDATE metrics_event_rollup SET runs = 31, errors = 3 WHERE agent = 'momentum'")
        conn.execute("INSERT INTO metrics_event_rollup SELECT * REPLACE ('ghost' AS agent, 5 AS runs, 0 AS errors) "
                     "FROM metrics_event_rollup WHERE agent = 'momentum'")
        conn.execute("UPDATE metrics_rollup_state SET count_rule = NULL")
    parsed = samples(exposition())
    assert value(parsed, "agent_runs_total", agent="momentum") == 31  # never lower than a running Prometheus saw
    assert value(parsed, "agent_errors_total", agent="momentum") == 3
    assert "ghost" not in agent_series(parsed)  # imported only: its series goes stale, it does not drop to 0
    import_lines(store, tmp_path, history("momentum", 40), name="more.jsonl")
    append_event(store, live("momentum", 2))
    parsed = samples(exposition())
    assert value(parsed, "agent_runs_total", agent="momentum") == 32  # from here on, live runs only


def test_a_rebuild_never_lowers_a_counter(store, tmp_path):
    for i in range(3):
        append_event(store, live("momentum", i))
    assert take_snapshot(store).agents["momentum"].runs == 3
    with store.connect() as conn:  # retention deleted two runs, and the rollup must be rebuilt (new buckets)
        conn.execute("DELETE FROM agent_events WHERE run_id IN ('momentum-0', 'momentum-1')")
        conn.execute("UPDATE metrics_rollup_state SET bucket_bounds = '{}'")
    totals = take_snapshot(store).agents["momentum"]
    assert totals.runs == 3 and totals.hists["agent_latency_seconds"].count == 3
    append_event(store, live("momentum", 9))
    assert take_snapshot(store).agents["momentum"].runs == 4
