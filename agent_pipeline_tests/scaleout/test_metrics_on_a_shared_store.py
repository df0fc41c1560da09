"""Publishing from several hosts of a shared store: one push lock and one push state, both in the database; the
exported kill switch is the database's."""

from __future__ import annotations

from datetime import UTC, datetime

from agent_pipeline.metrics.collector import files_and_freshness
from agent_pipeline.metrics.config import MetricsConfig
from agent_pipeline.metrics.publish import PushState, publish
from agent_pipeline.store import AgentEvent, LockBusy, Store, append_event
from agent_pipeline.trading.kill_switch_store import DatabaseKillSwitch
from agent_pipeline_tests.conftest import free_port


def test_publishers_on_two_hosts_count_together_and_keep_nothing_on_disk(postgres_url, tmp_path):
    store = Store(postgres_url)
    append_event(store, AgentEvent(run_id="r", agent="a", started_at=datetime.now(UTC), latency_seconds=0.1))
    down = MetricsConfig(gateway_url=f"http://127.0.0.1:{free_port()}", timeout_s=0.5)
    homes = [tmp_path / "host_a", tmp_path / "host_b"]
    for home in homes:
        home.mkdir()
        result = publish(down, home=home, store=Store(postgres_url))
        assert result.status == "failed"
    state = PushState.load(store, tmp_path / "unused.json")
    assert state.failures == 2 and state.outage_failures == 2  # one outage, seen by both hosts
    assert [sorted(p.name for p in home.iterdir()) for home in homes] == [[], []]


def test_the_push_lock_is_the_databases(postgres_url, tmp_path):
    store = Store(postgres_url)
    cfg = MetricsConfig(gateway_url=f"http://127.0.0.1:{free_port()}", timeout_s=0.5, lock_timeout_s=0.2)
    with Store(postgres_url).lock("metrics_push", 1.0):  # another host is pushing
        result = publish(cfg, home=tmp_path, store=store)
    assert result.status == "lock_busy"
    try:
        with store.lock("metrics_push", 0.1):
            pass
    except LockBusy:  # pragma: no cover - the lock must be free again
        raise AssertionError("the push lock stayed held") from None


def test_the_exported_kill_switch_is_the_one_in_the_database(postgres_url, tmp_path):
    store = Store(postgres_url)
    DatabaseKillSwitch(store, key=b"").trip("halted on another host")
    samples = {(s.name, s.labels): s.value for s in files_and_freshness(tmp_path, None, fresh=False, now=0.0,
                                                                         store=store)}
    assert samples[("trading_kill_switch_engaged", ())] == 1.0
    assert samples[("trading_kill_switch_state", (("state", "HALTED"),))] == 1.0
