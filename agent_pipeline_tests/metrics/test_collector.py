"""The collector computes cumulative values from the store: exact counts, correct negative-bucket histograms,
incremental folding that equals a full recount, and no exception for tables other domains have not built yet."""

import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from agent_pipeline.metrics import rollup
from agent_pipeline.metrics.collector import Snapshot, take_snapshot
from agent_pipeline.metrics.publish import exposition
from agent_pipeline.metrics.spec import BY_NAME, METRICS, exported_series_names
from agent_pipeline.store import Store
from agent_pipeline_tests.metrics.helpers import (
    assert_matches_store,
    distribution,
    event,
    fill,
    gate_decision,
    loop_tables,
    order,
    pnl,
    quota,
    samples,
    value,
    write,
)


def test_no_store_yet_gives_no_agent_series_and_creates_nothing(pipeline_home):
    parsed = samples(exposition())
    assert not [k for k in parsed if k[0].startswith("agent_runs")]
    assert value(parsed, "agent_pipeline_metrics_snapshot_timestamp_seconds") is not None
    assert not (pipeline_home / "agent_pipeline.duckdb").exists()


def test_counts_buckets_sum_and_count_equal_the_store(store):
    write(store,
          event("a", 1, latency=0.04, cost=0.0004, reward=-3.0),
          event("a", 2, latency=0.3, cost=0.02, reward=-0.5),
          event("a", 3, latency=12.0, cost=None, reward=0.15),
          event("b", 4, error="RuntimeError: boom", latency=0.7, cost=None),
          event("b", 5, latency=1.0, cost=0.1, reward=2.0))
    parsed = samples(exposition())
    assert_matches_store(parsed, store)
    # reward buckets start below zero: _sum and _count are still exported, and _sum is negative
    assert value(parsed, "agent_reward_sum", agent="a") == pytest.approx(-3.35)
    assert value(parsed, "agent_reward_count", agent="a") == 3
    assert value(parsed, "agent_reward_bucket", agent="a", le="-2.0") == 1
    # a failed run is counted, has a latency, no reward and no cost
    assert value(parsed, "agent_errors_total", agent="b") == 1
    assert value(parsed, "agent_reward_count", agent="b") == 1


def test_last_gauges_follow_the_latest_start_time_not_insertion_order(store):
    write(store, event("a", 10, reward=0.9, cost=0.005, latency=0.5), event("a", 2, reward=-0.4, cost=0.001, latency=3.0),
          event("a", 11, error="x", latency=0.1, cost=None))
    parsed = samples(exposition())
    assert value(parsed, "agent_last_reward", agent="a") == 0.9  # the errored run at 11 has no reward
    assert value(parsed, "agent_last_cost_usd", agent="a") == 0.005
    assert value(parsed, "agent_last_latency_seconds", agent="a") == 0.1
    assert value(parsed, "agent_last_run_timestamp_seconds", agent="a") == event("a", 11).started_at.timestamp()


def test_counters_accumulate_across_snapshots_and_never_go_backwards(store):
    write(store, event("a", 1), event("a", 2))
    first = samples(exposition())
    write(store, event("a", 3, reward=-1.5), event("c", 4))
    second = samples(exposition())
    assert_matches_store(second, store)
    for key, v in first.items():
        if key[0].endswith(("_total", "_bucket", "_count")) and not key[0].startswith("agent_pipeline_metrics"):
            assert second[key] >= v, key
    # deleting events (not a normal operation) does not make counters go backwards
    with store.connect() as conn:
        conn.execute("DELETE FROM agent_events WHERE agent = 'a'")
    third = samples(exposition())
    assert value(third, "agent_runs_total", agent="a") == 3


def test_an_event_arriving_behind_the_watermark_triggers_a_rebuild(store):
    write(store, event("a", 1))
    exposition()
    with store.connect() as conn:  # an insert that sets an old ingested_at (e.g. a copied table)
        conn.execute("INSERT INTO agent_events (event_id, run_id, agent, started_at, latency_seconds, reward, "
                     "ingested_at) VALUES ('old', 'r', 'a', now(), 0.1, 0.5, TIMESTAMPTZ '2000-01-01')")
    parsed = samples(exposition())
    assert value(parsed, "agent_runs_total", agent="a") == 2
    assert_matches_store(parsed, store)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.floats(0, 20, allow_nan=False),
    st.one_of(st.none(), st.floats(0, 0.2, allow_nan=False)),
    st.one_of(st.none(), st.floats(-5, 5, allow_nan=False)),
    st.booleans()), max_size=6), min_size=1, max_size=4))
def test_incremental_rollup_equals_a_full_recount(tmp_path_factory, batches):
    store = Store(tmp_path_factory.mktemp("h") / "agent_pipeline.duckdb")
    i = 0
    for batch in batches:
        for agent, latency, cost, reward, failed in batch:
            i += 1
            write(store, event(agent, i, latency=latency, cost=cost, reward=reward if reward is not None else 0.0,
                               error="E" if failed else None))
        snap = take_snapshot(store)
    with store.connect() as conn:
        full = rollup.aggregate_events(conn) if rollup.has_table(conn, "agent_events") else {}
    for agent, t in full.items():
        inc = snap.agents[agent]
        assert (inc.runs, inc.errors, inc.last_run_us) == (t.runs, t.errors, t.last_run_us)
        for name, h in t.hists.items():
            assert inc.hists[name].buckets == h.buckets and inc.hists[name].count == h.count
            assert inc.hists[name].sum == pytest.approx(h.sum, abs=1e-9)
    assert set(snap.agents) == set(full)


def test_a_table_in_another_shape_gives_none_of_its_series_and_the_rest_is_exported(store, caplog):
    write(store, event("a", 1))
    with store.connect() as conn:  # hand-edited tables: the readers query the schemas their domains create
        conn.execute("CREATE TABLE orders (id INTEGER)")
        conn.execute("INSERT INTO orders VALUES (1), (2)")
        conn.execute("CREATE TABLE gate_decisions (decided_at TIMESTAMPTZ)")
        conn.execute("CREATE TABLE daily_pnl (trading_date DATE, realized_pnl_usd VARCHAR)")
        conn.execute("INSERT INTO daily_pnl VALUES ('2026-01-01', 'oops')")
    parsed = samples(exposition())
    # no made-up 0 for a table that does not answer (it would read as a counter reset)
    assert not [k for k in parsed if k[0].startswith(("trading_orders", "trading_gate", "trading_guardrail",
                                                      "trading_realized"))]
    assert value(parsed, "agent_runs_total", agent="a") == 1
    assert value(parsed, "trading_kill_switch_engaged") == 0
    for table in ("gate_decisions", "orders", "daily_pnl"):
        assert f"table {table} does not answer" in caplog.text


def test_loop_tables_become_series(store, pipeline_home):
    write(store, event("a", 1))
    loop_tables(store)
    with store.connect() as conn:
        gate_decision(conn, "a", True, "OK")
        gate_decision(conn, "a", False, "SPREAD_TOO_WIDE", n=2)
        gate_decision(conn, "b", False, "KILL_SWITCH_HALTED")
        fill(conn, order(conn, "a"))
        pnl(conn, "2026-01-01", -20.0)
        pnl(conn, "2026-01-02", 5.5)
        quota(conn, "2026-01-01", "a", 1, 10.0)
        quota(conn, "2026-01-02", "a", 7, 700.0)
        distribution(conn, "a", "500", mean=0.1, win_rate=0.4, computed_at="2026-01-01")
        distribution(conn, "a", "500", mean=0.2, win_rate=0.6, computed_at="2026-01-02")
    parsed = samples(exposition())
    assert value(parsed, "trading_guardrail_denials_total", agent="a", reason_code="SPREAD_TOO_WIDE") == 2
    assert value(parsed, "trading_gate_decisions_total", agent="a", outcome="approved") == 1
    assert value(parsed, "trading_gate_decisions_total", agent="b", outcome="denied") == 1
    assert value(parsed, "trading_orders_total", agent="a") == 1
    assert value(parsed, "trading_fills_total", agent="a") == 1
    assert value(parsed, "trading_realized_pnl_usd", period="cumulative") == -14.5
    assert value(parsed, "trading_realized_pnl_usd", period="today") == 0  # nothing filled on today's UTC date
    assert value(parsed, "allocator_quota_runs", agent="a") == 7
    assert value(parsed, "allocator_capital_usd", agent="a") == 700.0
    assert value(parsed, "agent_reward_rolling_mean", agent="a", window="500") == 0.2
    assert value(parsed, "agent_reward_win_rate", agent="a", window="500") == 0.6


def test_kill_switch_state_is_exported(pipeline_home):
    trading = pytest.importorskip("agent_pipeline.trading.kill_switch")
    assert value(samples(exposition()), "trading_kill_switch_engaged") == 0
    trading.KillSwitch(pipeline_home / "kill_switch.json").trip("test")
    parsed = samples(exposition())
    assert value(parsed, "trading_kill_switch_engaged") == 1
    assert value(parsed, "trading_kill_switch_state", state="HALTED") == 1


def test_each_family_has_the_name_type_and_labels_of_the_contract(store):
    write(store, event("a", 1, reward=-0.7), event("b", 2, error="x"))
    for fam in text_string_to_metric_families(exposition().decode()):
        spec = BY_NAME[fam.name + "_total" if fam.type == "counter" else fam.name]
        assert fam.type == spec.kind, fam.name
        for s in fam.samples:
            assert set(s.labels) - {"le"} == set(spec.labels), (s.name, s.labels)
            if fam.type == "counter":
                assert s.name == spec.name  # one "_total", never "_total_total"


def test_every_exported_sample_is_in_the_contract(store):
    write(store, event("a", 1), event("b", 2, error="x"))
    names = {k[0] for k in samples(exposition())}
    assert names <= exported_series_names()
    assert all(m.help for m in METRICS)
    assert Snapshot(taken_at=0).families()  # always at least the snapshot timestamp


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed (ops/install-system-deps.sh)")
def test_promtool_accepts_our_exposition(store, tmp_path):
    write(store, event("a", 1, reward=-0.7), event("b", 2, error="x"))
    out = subprocess.run(["promtool", "check", "metrics"], input=exposition(), capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode() + out.stdout.decode()
