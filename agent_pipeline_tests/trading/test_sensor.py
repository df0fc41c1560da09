"""The circuit-breaker sensor on crafted event histories: trips, does not trip, skips when busy."""

import json
import threading
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from agent_pipeline.defs.resources import KillSwitchResource, StoreResource
from agent_pipeline.defs.trading import sensors
from agent_pipeline.defs.trading.sensors import build_circuit_breaker
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.settings import ConfigError
from agent_pipeline.store.events import AgentEvent, append_frame, events_frame
from agent_pipeline.store.importer import import_events
from agent_pipeline.trading import KillSwitch, KillSwitchState
from agent_pipeline.trading.kill_switch import default_path


def history(store, *, runs=20, error_every=0, reward=0.2, reward_fn=None, span_s=240, now=None):
    now = now or datetime.now(UTC)
    events = []
    for i in range(runs):
        failed = bool(error_every) and i % error_every == 0
        r = None if failed else (reward_fn(i) if reward_fn else reward)
        events.append(AgentEvent(run_id=f"r{i}", agent="momentum", latency_seconds=0.1,
                                 started_at=now - timedelta(seconds=span_s * i / max(runs, 1)),
                                 error="MarketDataError: injected fault" if failed else None, reward=r))
    append_frame(store, events_frame(events))


def resources():
    return {"store": StoreResource(), "kill_switch": KillSwitchResource()}


def circuit_breaker():
    """The sensor as the code location builds it, from this test's config.toml."""
    return build_circuit_breaker(Settings.load().guardrails)


def tick(cursor=None):
    context = dg.build_sensor_context(cursor=cursor, resources=resources())
    return circuit_breaker()(context)


def _cursor(result):
    return result.cursor if isinstance(result, dg.SensorResult) else None


def _skip_text(result):
    if isinstance(result, dg.SkipReason):
        return result.skip_message
    skip = result.skip_reason
    return skip.skip_message if isinstance(skip, dg.SkipReason) else str(skip)


def test_sensor_is_on_by_default_with_an_explicit_interval():
    sensor = circuit_breaker()
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == sensors.INTERVAL_SECONDS
    assert sensor.description


def test_no_store_yet_is_a_skip():
    result = tick()
    assert isinstance(result, dg.SkipReason) and "no store" in result.skip_message


def test_healthy_history_does_not_trip(store):
    history(store, error_every=10)  # 2 of 20 failed = 0.10, not above the limit
    result = tick()
    assert isinstance(result, dg.SkipReason) and "no breach" in result.skip_message
    assert KillSwitch(default_path()).state is KillSwitchState.ACTIVE


def test_error_storm_trips_after_consecutive_breaches_with_the_numbers(store):
    history(store, error_every=2)  # half the runs fail
    first = tick()
    assert "breach 1/2" in _skip_text(first)
    assert KillSwitch(default_path()).state is KillSwitchState.ACTIVE
    second = tick(_cursor(first))
    kill = KillSwitch(default_path())
    assert kill.state is KillSwitchState.HALTED
    assert "error rate 0.50 (10/20 runs" in kill.reason and kill.status().by == "circuit_breaker"
    assert "TRIPPED" in _skip_text(second)
    (event,) = second.asset_events
    assert event.asset_key == dg.AssetKey("trading_safety")
    assert event.metadata["kill_switch_state"].value == "HALTED"
    third = tick(_cursor(second))  # never auto-clears, never trips twice
    assert "already HALTED" in _skip_text(third)
    assert len(kill.audit()) == 1


def test_one_bad_read_does_not_halt(store):
    history(store, error_every=2)
    first = tick()
    cursor = json.loads(_cursor(first))
    assert cursor["consecutive"] == 1
    with store.connect() as conn:  # the storm passes
        conn.execute("DELETE FROM agent_events WHERE error IS NOT NULL")
    calm = tick(_cursor(first))
    assert json.loads(_cursor(calm))["consecutive"] == 0
    with store.connect() as conn:
        conn.execute("DELETE FROM agent_events")
    history(store, error_every=2)
    again = tick(_cursor(calm))
    assert "breach 1/2" in _skip_text(again)
    assert KillSwitch(default_path()).state is KillSwitchState.ACTIVE


def test_reward_collapse_trips_when_configured(store, pipeline_home):
    (pipeline_home / "config.toml").write_text("[guardrails]\nbreaker_on_reward_collapse = true\n"
                                               "breaker_consecutive_ticks = 1\n[reward.collapse]\ndrop_std = 1.0\n"
                                               "min_drop = 0.5\n")
    now = datetime.now(UTC)
    # a good baseline over the day before the last hour, a collapse in the last 15 minutes
    history(store, runs=200, reward=1.0, span_s=20 * 3600, now=now - timedelta(hours=2))
    history(store, runs=22, reward=-0.2, span_s=600, now=now)
    result = tick()
    kill = KillSwitch(default_path())
    assert kill.state is KillSwitchState.HALTED and "mean reward fell" in kill.reason, _skip_text(result)


def test_skips_when_the_store_is_busy(store, monkeypatch):
    history(store, error_every=2)
    monkeypatch.setattr(sensors, "READ_TIMEOUT_S", 0.2)
    held, release = threading.Event(), threading.Event()

    def writer():
        with store.connect():
            held.set()
            release.wait(10)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert held.wait(5)
        result = tick(json.dumps({"consecutive": 1}))
    finally:
        release.set()
        t.join()
    assert isinstance(result, dg.SkipReason) and "store busy" in result.skip_message
    assert KillSwitch(default_path()).state is KillSwitchState.ACTIVE


def test_invalid_configuration_never_reaches_the_sensor(pipeline_home):
    # checked at load: the code location (and every run process, which loads it too) fails, so nothing trades
    (pipeline_home / "config.toml").write_text("[guardrails]\nmax_error_rate_5m = 0\n")
    with pytest.raises(ConfigError, match=r"\[guardrails\] max_error_rate_5m must be a number in \(0, 1\]"):
        circuit_breaker()


@pytest.mark.parametrize("cursor", ["not json", "[1, 2]", None])
def test_bad_cursor_starts_over(store, cursor):
    history(store, error_every=2)
    assert "breach 1/2" in _skip_text(tick(cursor))


def test_the_daemons_evaluation_path_keeps_the_skip_reason_and_asset_event(store):
    history(store, error_every=2)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, cursor=json.dumps({"consecutive": 1}),
                                          resources=resources())
        data = circuit_breaker().evaluate_tick(context)
    assert "TRIPPED" in data.skip_message
    assert [e.asset_key for e in data.asset_events] == [dg.AssetKey("trading_safety")]
    assert json.loads(data.cursor)["consecutive"] == 2


def test_one_injected_fault_among_a_handful_of_runs_never_trips(store):
    history(store, runs=5, error_every=5)  # run 0 failed: 1/5 = 20 %, one fault
    cursor = None
    for _ in range(3):
        result = tick(cursor)
        cursor = _cursor(result) or cursor
        assert "no breach" in _skip_text(result) and "too few failures" in _skip_text(result)
    assert KillSwitch(default_path()).state is KillSwitchState.ACTIVE


def test_imported_history_cannot_blind_the_sensor(store, tmp_path):
    history(store, runs=10, error_every=1)  # a live outage: 10/10
    lines = tmp_path / "events.jsonl"
    lines.write_text('{"agent": "momentum", "reward": 0.3}\n' * 500)  # no timestamps: stamped now
    assert import_events(store, lines).inserted == 500
    second = tick(_cursor(tick()))
    kill = KillSwitch(default_path())
    assert kill.state is KillSwitchState.HALTED and "(10/10 runs" in kill.reason, _skip_text(second)
