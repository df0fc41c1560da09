"""The breaker's measurement on real DuckDB files: live runs only, a rule that ignores one fault among a handful
of runs but catches an outage, and per-agent judging that a flood of successes cannot hide."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from agent_pipeline.reward.config import CollapseConfig
from agent_pipeline.store.events import AgentEvent, append_frame, events_frame
from agent_pipeline.store.importer import import_events
from agent_pipeline.trading import GuardrailConfig
from agent_pipeline.trading.breaker import read_breaker
from agent_pipeline.trading.store_state import StoreGateState


def live_runs(store, *, failed=0, ok=0, agent="momentum", now=None, span_s=200.0, reward=0.1, source="dagster"):
    """``failed`` then ``ok`` runs of ``agent`` spread over the last ``span_s`` seconds, as the op writes them."""
    now = now or datetime.now(UTC)
    total = failed + ok
    events = [AgentEvent(run_id=f"{agent}-{i}", agent=agent, latency_seconds=0.1, source=source,
                         started_at=now - timedelta(seconds=span_s * i / max(total, 1)),
                         error="MarketDataError: injected fault" if i < failed else None,
                         error_type="MarketDataError" if i < failed else None,
                         reward=None if i < failed else reward)
              for i in range(total)]
    append_frame(store, events_frame(events))


def reading(store, cfg=None, now=None):
    with store.connect(read_only=True) as conn:
        return read_breaker(conn, cfg or GuardrailConfig(), now or datetime.now(UTC))


def write_history(path, lines):
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_imported_history_without_timestamps_does_not_dilute_live_failures(store, tmp_path):
    live_runs(store, failed=10)
    history = write_history(tmp_path / "events.jsonl", [{"agent": "momentum", "reward": 0.2}] * 500)
    report = import_events(store, history)
    assert report.inserted == 500 and report.stamped_with_file_time == 500  # all stamped "now"
    measured = reading(store)
    assert (measured.errors, measured.events) == (10, 10) and measured.breached
    assert "10/10 runs" in measured.reason
    # the gate asks the same question before the next order
    breach = StoreGateState(store).breaker_breach(datetime.now(UTC))
    assert breach is not None and "10/10" in breach


def test_imported_failures_stamped_now_do_not_trip(store, tmp_path):
    live_runs(store, ok=20)
    history = write_history(tmp_path / "events.jsonl", [{"agent": "momentum", "error": "old outage"}] * 50)
    assert import_events(store, history).failed_runs == 50
    measured = reading(store)
    assert (measured.errors, measured.events) == (0, 20) and not measured.breached


def test_imported_rewards_do_not_hide_a_live_reward_collapse(store, tmp_path):
    cfg = GuardrailConfig(breaker_on_reward_collapse=True, reward_collapse=CollapseConfig(floor=0.0, min_runs=10))
    live_runs(store, ok=12, reward=-0.5, span_s=600)
    history = write_history(tmp_path / "events.jsonl", [{"agent": "momentum", "reward": 1.0}] * 500)
    import_events(store, history)
    measured = reading(store, cfg)
    assert measured.reward_n == 12 and measured.reward_mean == pytest.approx(-0.5)
    assert measured.breached and "below the floor" in measured.reason


def test_rows_from_the_future_do_not_count(store):
    now = datetime.now(UTC)
    live_runs(store, failed=10, now=now)
    live_runs(store, ok=500, agent="watcher", now=now + timedelta(hours=1))
    measured = reading(store, now=now)
    assert (measured.errors, measured.events) == (10, 10) and measured.breached


def test_rows_that_are_neither_failure_nor_scored_success_are_not_evidence_of_health(store):
    live_runs(store, failed=10)
    live_runs(store, ok=500, agent="odd", reward=None)  # no error, but no reward either
    measured = reading(store)
    assert (measured.errors, measured.events) == (10, 10) and measured.breached


@pytest.mark.parametrize("failed, ok, breached", [
    (1, 4, False),   # one injected fault among about 5 runs: 20 %, but noise
    (1, 5, False),
    (2, 3, False),   # two: still below the minimum failure count
    (3, 2, True),
    (4, 2, True),    # a real outage: 4 of 6 failing
    (10, 0, True),   # 10/10
    (3, 24, True),   # larger samples keep the prototype's rate limit: 3/27 = 0.11
    (3, 27, False),  # 3/30 = 0.10 is not above the limit
    (4, 3, True),
])
def test_a_single_fault_is_noise_and_an_outage_breaches(store, failed, ok, breached):
    live_runs(store, failed=failed, ok=ok)
    measured = reading(store)
    assert (measured.errors, measured.events) == (failed, failed + ok)
    assert measured.breached is breached, measured.reason


def test_the_minimum_failure_count_is_configurable(store):
    live_runs(store, failed=1, ok=4)
    assert not reading(store).breached
    assert reading(store, GuardrailConfig(min_errors_for_error_rate=1)).breached  # the prototype's rule


def test_a_flood_of_successes_from_one_agent_does_not_hide_another_agents_failures(store):
    live_runs(store, ok=300, agent="regime_watcher")
    live_runs(store, failed=5, agent="momentum")
    measured = reading(store)
    assert (measured.errors, measured.events) == (5, 305)  # 1.6 % overall
    assert measured.breached and "agent 'momentum'" in measured.reason and "5/5 runs" in measured.reason
    assert {a: (n, e) for a, n, e in measured.by_agent} == {"momentum": (5, 5), "regime_watcher": (300, 0)}
    assert not reading(store, GuardrailConfig(breaker_per_agent=False)).breached


def test_per_agent_judging_uses_the_same_small_sample_rule(store):
    for agent in ("cross_venue_arb", "momentum", "regime_watcher"):
        live_runs(store, failed=1, ok=4, agent=agent)  # 3/15 overall would breach; it is one fault per agent...
    assert reading(store).breached  # ...and three independent faults in one window is not noise
    with store.connect() as conn:
        conn.execute("DELETE FROM agent_events WHERE agent <> 'momentum'")
    live_runs(store, ok=100, agent="regime_watcher")
    assert not reading(store).breached  # momentum's single fault is noise on its own too


def test_cli_runs_count_as_live(store):
    live_runs(store, failed=5, source="cli")
    assert reading(store).breached


def test_invalid_minimum_failure_count_fails_at_construction():
    from agent_pipeline.settings import ConfigError

    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ConfigError, match="min_errors_for_error_rate"):
            GuardrailConfig(min_errors_for_error_rate=bad)


# -- hidden case 5 of issue 9: a run belongs to the window in which it ended -----------------------------------
def long_failures(store, now, *, n, latency_s, agent="slow", ok=0):
    """``n`` failed runs that each took ``latency_s`` and ended within the last minute (plus ``ok`` quick
    successes), as the op writes them: stamped with their start."""
    events = [AgentEvent(run_id=f"{agent}-{i}", agent=agent, source="dagster", latency_seconds=latency_s,
                         started_at=now - timedelta(seconds=latency_s + 10.0 * i),
                         error="AgentTimeout: hung", error_type="AgentTimeout", reward=None) for i in range(n)]
    events += [AgentEvent(run_id=f"{agent}-ok{i}", agent=agent, source="dagster", latency_seconds=0.1,
                          started_at=now - timedelta(seconds=5.0 * i), reward=0.1) for i in range(ok)]
    append_frame(store, events_frame(events))


def test_long_running_failures_count_in_the_window_they_ended_in(store):
    now = datetime.now(UTC)
    long_failures(store, now, n=5, latency_s=1_200.0, ok=1)  # 20-minute hangs, all ended in the last minute
    measured = reading(store, now=now)
    assert (measured.errors, measured.events) == (5, 6) and measured.breached, measured


def test_runs_that_ended_before_the_window_do_not_count(store):
    now = datetime.now(UTC)
    events = [AgentEvent(run_id=f"old-{i}", agent="old", source="dagster", latency_seconds=1.0,
                         started_at=now - timedelta(seconds=400.0 + i), error="X", error_type="X", reward=None)
              for i in range(6)]
    append_frame(store, events_frame(events))
    assert reading(store, now=now).events == 0


def test_a_run_still_judged_when_its_latency_is_unknown(store):
    now = datetime.now(UTC)
    events = [AgentEvent(run_id=f"n-{i}", agent="n", source="dagster", latency_seconds=None,
                         started_at=now - timedelta(seconds=10.0 * i), error="X", error_type="X", reward=None)
              for i in range(5)]
    append_frame(store, events_frame(events))
    measured = reading(store, now=now)
    assert (measured.errors, measured.events) == (5, 5) and measured.breached
