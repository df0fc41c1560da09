"""What the dashboard and the alert rules need from a snapshot: latency buckets that resolve fast agents, the
reward-distribution statistics and collapse parameters of the Dagster check, each agent's expected run interval,
and a rollup that survives an upgrade that changes the histogram bounds."""

import math

import pytest

from agent_pipeline.metrics.publish import exposition
from agent_pipeline.metrics.spec import LATENCY_BUCKETS, PROTOTYPE_LATENCY_BUCKETS
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.settings import ConfigError
from agent_pipeline_tests.metrics.helpers import (
    assert_matches_store,
    distribution,
    event,
    loop_tables,
    quota,
    samples,
    value,
    write,
)


def test_latency_buckets_keep_the_prototype_bounds_and_resolve_agents_under_50_ms(store):
    assert set(PROTOTYPE_LATENCY_BUCKETS) <= set(LATENCY_BUCKETS) and list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)
    write(store, *(event("fast", i, latency=lat) for i, lat in enumerate((0.0008, 0.004, 0.004, 0.006, 0.02, 0.03))))
    parsed = samples(exposition())
    assert_matches_store(parsed, store)
    cumulative = {le: value(parsed, "agent_latency_seconds_bucket", agent="fast", le=le)
                  for le in ("0.001", "0.0025", "0.005", "0.01", "0.025", "0.05")}
    assert cumulative == {"0.001": 1, "0.0025": 1, "0.005": 3, "0.01": 4, "0.025": 5, "0.05": 6}


def test_a_rollup_kept_with_other_histogram_bounds_is_rebuilt_not_misread(store):
    write(store, event("a", 1, latency=0.004), event("a", 2, latency=0.3))
    exposition()  # the rollup now holds these two events
    with store.connect() as conn:  # as a release with only the prototype's eight latency bounds left it
        conn.execute("UPDATE metrics_event_rollup SET latency_buckets = latency_buckets[6:]")
        conn.execute("UPDATE metrics_rollup_state SET bucket_bounds = NULL")
    write(store, event("a", 3, latency=0.002))
    parsed = samples(exposition())
    assert_matches_store(parsed, store)
    assert value(parsed, "agent_latency_seconds_bucket", agent="a", le="0.005") == 2


def _distributions(conn, rows):
    for agent, window, n, mean, std, win_rate in rows:
        distribution(conn, agent, window, n=n, mean=mean, std=std, win_rate=win_rate)


def test_the_reward_collapse_inputs_are_exported_as_the_check_reads_them(store, pipeline_home):
    (pipeline_home / "config.toml").write_text(
        "[reward.collapse]\nmin_runs = 7\ndrop_std = 2.5\nmin_drop = 0.05\n")
    write(store, event("a", 1))
    loop_tables(store)
    with store.connect() as conn:
        _distributions(conn, [("a", "1h", 12, -0.02, 0.04, 0.3), ("a", "7d", 900, 0.11, 0.08, 0.6),
                              ("b", "1h", 1, 0.2, None, 1.0), ("b", "7d", 0, None, float("nan"), None)])
    parsed = samples(exposition(agents=["a", "b"], expectations=Settings.load().alert_inputs()))
    assert value(parsed, "agent_reward_rolling_std", agent="a", window="7d") == 0.08
    assert value(parsed, "agent_reward_rolling_runs", agent="a", window="7d") == 900
    assert value(parsed, "agent_reward_rolling_runs", agent="b", window="7d") == 0
    # undefined statistics (one run, no runs, NaN) are absent, never exported as NaN
    assert value(parsed, "agent_reward_rolling_std", agent="b", window="1h") is None
    assert value(parsed, "agent_reward_rolling_std", agent="b", window="7d") is None
    assert value(parsed, "agent_reward_rolling_mean", agent="b", window="7d") is None
    assert not [k for k, v in parsed.items() if math.isnan(v)]
    assert value(parsed, "agent_reward_collapse_min_runs") == 7
    assert value(parsed, "agent_reward_collapse_drop_std") == 2.5
    assert value(parsed, "agent_reward_collapse_min_drop") == 0.05
    assert value(parsed, "agent_reward_collapse_floor") is None  # unset: no series, never a made-up floor
    (pipeline_home / "config.toml").write_text("[reward.collapse]\nfloor = -0.5\n")
    parsed = samples(exposition(expectations=Settings.load().alert_inputs()))
    assert value(parsed, "agent_reward_collapse_floor") == -0.5


def test_each_agent_expected_run_interval_follows_its_quota_and_the_period(store, pipeline_home):
    (pipeline_home / "config.toml").write_text("[allocation]\nperiod_minutes = 30\n")
    write(store, event("a", 1))
    loop_tables(store)
    with store.connect() as conn:
        quota(conn, "2026-01-01 00:00+00", "a", 60, 1.0, "2026-01-01 00:00:05+00")
        quota(conn, "2026-01-01 00:30+00", "a", 4, 1.0, "2026-01-01 00:30:07+00")
        quota(conn, "2026-01-01 00:30+00", "benched", 0, 0.0, "2026-01-01 00:30:07+00")
    parsed = samples(exposition(expectations=Settings.load().alert_inputs()))
    assert value(parsed, "allocator_period_seconds") == 1800
    assert value(parsed, "agent_expected_run_interval_seconds", agent="a") == 450  # the period in force
    assert value(parsed, "agent_expected_run_interval_seconds", agent="benched") is None
    assert value(parsed, "allocator_decided_at_timestamp_seconds") == 1767227407.0


@pytest.mark.parametrize("table, key", [("[reward.collapse]\nmin_runs = 0\n", "min_runs"),
                                        ("[allocation]\nperiod_minutes = 7\n", "period_minutes")])
def test_an_invalid_config_exports_no_threshold_rather_than_a_made_up_one(store, pipeline_home, table, key):
    (pipeline_home / "config.toml").write_text(table)
    with pytest.raises(ConfigError, match=key):  # the settings never load, so no threshold comes from them
        Settings.load()
    write(store, event("a", 1))
    parsed = samples(exposition())  # the measured series still come from the store
    assert value(parsed, "agent_runs_total", agent="a") == 1
    assert not [k for k in parsed if k[0].startswith(("agent_reward_collapse", "allocator_period"))]
