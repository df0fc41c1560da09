"""While another process holds the store, every exposition still answers within seconds: the kill switch read fresh
always, the rest from the last good snapshot, with its age and a gauge saying the values are not fresh. The scrape
server keeps that snapshot in memory; a push POSTs the kill switch into the group, which keeps the last PUT."""

import shutil
import subprocess
import time
import urllib.request

import pytest

from agent_pipeline.metrics.config import MetricsConfig
from agent_pipeline.metrics.publish import publish, serve
from agent_pipeline.trading import KillSwitch
from agent_pipeline_tests.conftest import free_port
from agent_pipeline_tests.metrics.helpers import event, held_store, samples, value, write


def _scrape(url: str) -> tuple[dict, float]:
    t0 = time.monotonic()
    body = urllib.request.urlopen(url, timeout=9).read()  # under Prometheus' default 10 s scrape timeout
    return samples(body), time.monotonic() - t0


@pytest.fixture
def server(pipeline_home):
    srv, _thread = serve(0, "127.0.0.1", answer_within_s=0.5)
    try:
        yield f"http://127.0.0.1:{srv.server_port}/metrics"
    finally:
        srv.shutdown()
        srv.server_close()


def test_the_first_scrape_of_a_busy_store_answers_with_the_kill_switch(store, pipeline_home, server):
    write(store, event("a", 1))
    with held_store():
        parsed, took = _scrape(server)
        assert took < 3
        assert value(parsed, "trading_kill_switch_engaged") == 0
        assert value(parsed, "trading_kill_switch_state", state="ACTIVE") == 1
        assert value(parsed, "agent_pipeline_metrics_snapshot_fresh") == 0
        assert value(parsed, "agent_pipeline_metrics_snapshot_age_seconds") is None  # no snapshot yet
        assert value(parsed, "agent_runs_total", agent="a") is None  # nothing made up for what was not read
        KillSwitch(pipeline_home / "kill_switch.json").trip("tripped while the store is held")
        parsed, took = _scrape(server)
        assert took < 3 and value(parsed, "trading_kill_switch_engaged") == 1


def test_a_busy_store_serves_the_last_good_snapshot_with_its_age(store, pipeline_home, server):
    write(store, event("a", 1), event("a", 2, error="boom"))
    fresh, _ = _scrape(server)
    assert value(fresh, "agent_pipeline_metrics_snapshot_fresh") == 1
    assert value(fresh, "agent_pipeline_metrics_snapshot_age_seconds") < 1
    taken = value(fresh, "agent_pipeline_metrics_snapshot_timestamp_seconds")
    with held_store():
        time.sleep(0.2)
        KillSwitch(pipeline_home / "kill_switch.json").trip("tripped while the store is held")
        stale, took = _scrape(server)
    assert took < 3
    assert value(stale, "agent_pipeline_metrics_snapshot_fresh") == 0
    assert value(stale, "agent_pipeline_metrics_snapshot_timestamp_seconds") == taken
    assert value(stale, "agent_pipeline_metrics_snapshot_age_seconds") >= 0.2
    assert value(stale, "agent_runs_total", agent="a") == 2 and value(stale, "agent_errors_total", agent="a") == 1
    assert value(stale, "trading_kill_switch_engaged") == 1  # read now, not from the snapshot
    # once the store is free again, scrapes are fresh and follow the store
    again, _ = _scrape(server)
    assert value(again, "agent_pipeline_metrics_snapshot_fresh") == 1
    write(store, event("a", 3))
    again, _ = _scrape(server)
    assert value(again, "agent_pipeline_metrics_snapshot_fresh") == 1 and value(again, "agent_runs_total", agent="a") == 3


def _gateway(port: int) -> subprocess.Popen:
    gw = subprocess.Popen(["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1).status == 200:
                return gw
        except OSError:
            time.sleep(0.05)
    gw.terminate()
    pytest.fail("the Pushgateway did not start")


@pytest.mark.skipif(not shutil.which("prometheus-pushgateway"),
                    reason="prometheus-pushgateway not installed (ops/install-system-deps.sh)")
def test_a_push_during_a_busy_store_updates_the_kill_switch_in_a_real_pushgateway(store, pipeline_home):
    write(store, event("a", 1))
    port = free_port()
    gw = _gateway(port)
    try:
        url = f"http://127.0.0.1:{port}"
        assert publish(MetricsConfig(gateway_url=url)).ok
        KillSwitch(pipeline_home / "kill_switch.json").trip("tripped while the store is held")
        with held_store():
            result = publish(MetricsConfig(gateway_url=url, store_timeout_s=0.2))
        assert result.status == "store_unavailable" and result.partial
        held = samples(urllib.request.urlopen(f"{url}/metrics", timeout=5).read())
    finally:
        gw.terminate()
        gw.wait(timeout=10)
    group = {"job": "agent_pipeline", "instance": ""}
    assert value(held, "trading_kill_switch_engaged", **group) == 1
    assert value(held, "trading_kill_switch_state", state="HALTED", **group) == 1
    assert value(held, "agent_pipeline_metrics_snapshot_fresh", **group) == 0
    assert value(held, "agent_pipeline_metrics_snapshot_age_seconds", **group) >= 0
    assert value(held, "agent_runs_total", agent="a", **group) == 1  # kept from the last PUT
    assert value(held, "agent_pipeline_metrics_snapshot_timestamp_seconds", **group) > 0
