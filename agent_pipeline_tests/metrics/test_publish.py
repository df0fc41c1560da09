"""Publishing: PUT to one fixed group with optional basic auth, never raising when the gateway is down or slow,
counting failures, and serialised so that pushes arrive in snapshot order even from concurrent processes."""

import base64
import fcntl
import logging
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent_pipeline.metrics.config import MetricsConfig
from agent_pipeline.metrics.publish import LOCK_FILE, exposition, publish, read_state
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.settings import ConfigError
from agent_pipeline.trading import KillSwitch
from agent_pipeline_tests.conftest import free_port
from agent_pipeline_tests.metrics.helpers import assert_matches_store, event, samples, value, write


def push(url: str, **metrics):
    """One publish to ``url`` with the [metrics] defaults and ``metrics`` over them."""
    return publish(MetricsConfig(gateway_url=url, **metrics))


class Gateway:
    """A real HTTP server that records what a Pushgateway would receive (method, path, auth, body)."""

    def __init__(self, delay_s: float = 0.0):
        self.requests: list[dict] = []
        self.delay_s = delay_s
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(outer.delay_s)
                outer.requests.append({"method": self.command, "path": self.path,
                                       "auth": self.headers.get("Authorization"), "body": body})
                self.send_response(200)
                self.end_headers()

            do_POST = do_PUT

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_push_puts_the_whole_state_to_one_fixed_group_with_basic_auth(store):
    write(store, event("a", 1, reward=-0.3), event("b", 2, error="x"))
    with Gateway() as gw:
        result = publish(MetricsConfig(gateway_url=gw.url), auth=("ops", "s3cret"))
    assert result.ok and result.events == 2 and result.payload_bytes > 0
    (req,) = gw.requests
    assert req["method"] == "PUT" and req["path"] == "/metrics/job/agent_pipeline"
    assert req["auth"] == "Basic " + base64.b64encode(b"ops:s3cret").decode()
    assert_matches_store(samples(req["body"]), store)


def test_gateway_down_is_logged_and_counted_never_raised_and_the_next_push_catches_up(store, caplog):
    write(store, event("a", 1))
    down = f"http://127.0.0.1:{free_port()}"
    first = push(down)
    write(store, event("a", 2))
    second = push(down)
    assert (first.status, second.status) == ("failed", "failed")
    assert read_state().failures == 2 and "push to" in caplog.text
    with Gateway() as gw:
        assert push(gw.url).ok
    body = samples(gw.requests[-1]["body"])
    assert value(body, "agent_runs_total", agent="a") == 2  # caught up: the values come from the store
    assert value(body, "agent_pipeline_metrics_push_failures_total") == 2
    assert read_state().pushes == 1


def test_a_slow_gateway_times_out_without_failing(store):
    write(store, event("a", 1))
    with Gateway(delay_s=2.0) as gw:
        t0 = time.monotonic()
        result = push(gw.url, timeout_s=0.3)
        took = time.monotonic() - t0
    assert result.status == "failed" and took < 1.5
    assert read_state().failures == 1


def test_a_held_push_lock_skips_instead_of_waiting_forever(store, pipeline_home):
    write(store, event("a", 1))
    fd = os.open(pipeline_home / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with Gateway() as gw:
            result = push(gw.url, lock_timeout_s=0.2)
        assert result.status == "lock_busy" and not gw.requests
    finally:
        os.close(fd)


def test_a_busy_store_pushes_the_kill_switch_and_keeps_the_previous_values(store, pipeline_home):
    write(store, event("a", 1))
    with Gateway() as gw:
        assert push(gw.url).ok
        KillSwitch(pipeline_home / "kill_switch.json").trip("tripped while the store is busy")
        with store.connect():  # another process's long write holds the store lock
            result = push(gw.url, store_timeout_s=0.2)
    assert result.status == "store_unavailable" and result.partial and not result.ok
    assert read_state().skipped_busy == 1 and read_state().pushes == 1
    put, post = gw.requests
    assert (put["method"], post["method"]) == ("PUT", "POST")  # POST replaces only the families it sends
    assert post["path"] == "/metrics/job/agent_pipeline"
    sent = samples(post["body"])
    assert value(sent, "trading_kill_switch_engaged") == 1
    assert value(sent, "trading_kill_switch_state", state="HALTED") == 1
    assert value(sent, "agent_pipeline_metrics_snapshot_fresh") == 0
    first = value(samples(put["body"]), "agent_pipeline_metrics_snapshot_timestamp_seconds")
    assert 0 <= value(sent, "agent_pipeline_metrics_snapshot_age_seconds") <= time.time() - first + 1
    # nothing the store holds is sent: the gateway keeps those families from the last PUT
    assert not [k for k in sent if k[0].startswith(("agent_runs", "agent_latency", "trading_orders"))]
    assert value(sent, "agent_pipeline_metrics_snapshot_timestamp_seconds") is None


_PUBLISHER = """
import sys
from agent_pipeline.metrics.config import MetricsConfig
from agent_pipeline.metrics.publish import publish
from agent_pipeline.store import AgentEvent, Store, append_event
from datetime import UTC, datetime
store = Store.at_home()
for i in range(3):
    append_event(store, AgentEvent(run_id=sys.argv[2], agent=sys.argv[2], started_at=datetime.now(UTC),
                                   latency_seconds=0.1, reward=0.1))
    r = publish(MetricsConfig(gateway_url=sys.argv[1]))
    assert r.ok, r.summary()
"""


def test_concurrent_publishers_never_push_an_older_snapshot_after_a_newer_one(store):
    write(store, event("first", 0))
    with Gateway(delay_s=0.05) as gw:
        procs = [subprocess.Popen([sys.executable, "-c", _PUBLISHER, gw.url, f"p{i}"]) for i in range(4)]
        assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    totals = [sum(v for (name, _), v in samples(r["body"]).items() if name == "agent_runs_total") for r in gw.requests]
    stamps = [value(samples(r["body"]), "agent_pipeline_metrics_snapshot_timestamp_seconds") for r in gw.requests]
    assert len(gw.requests) == 12
    assert totals == sorted(totals) and stamps == sorted(stamps)  # arrival order == snapshot order
    assert totals[-1] == 13
    assert_matches_store(samples(gw.requests[-1]["body"]), store)


def test_config_is_strict_and_the_environment_names_the_gateway(pipeline_home, monkeypatch):
    (pipeline_home / "config.toml").write_text('[metrics]\ngateway_url = "http://gw:9091"\ntimeout_s = 2\n')
    assert Settings.load().metrics.gateway_url == "http://gw:9091"
    monkeypatch.setenv("AGENT_PIPELINE_PUSHGATEWAY_URL", "http://other:9091")
    assert Settings.load().metrics.gateway_url == "http://other:9091"
    (pipeline_home / "config.toml").write_text('[metrics]\ngatway_url = "http://gw:9091"\n')
    with pytest.raises(ConfigError, match="gatway_url"):
        Settings.load()
    with pytest.raises(ConfigError, match="timeout_s"):
        MetricsConfig(timeout_s=0)
    with pytest.raises(ConfigError, match="gateway_url"):
        MetricsConfig(gateway_url="gw:9091")


def test_exposition_carries_push_counters(store):
    write(store, event("a", 1))
    push(f"http://127.0.0.1:{free_port()}")
    parsed = samples(exposition())
    assert value(parsed, "agent_pipeline_metrics_push_failures_total") == 1
    assert value(parsed, "agent_pipeline_metrics_pushes_total") == 0


def test_an_unreadable_store_pushes_the_kill_switch_without_raising(pipeline_home):
    (pipeline_home / "agent_pipeline.duckdb").write_bytes(b"not a duckdb file" * 100)
    with Gateway() as gw:
        result = push(gw.url)
    assert result.status == "store_unavailable" and result.error
    (post,) = gw.requests
    sent = samples(post["body"])
    assert post["method"] == "POST" and value(sent, "trading_kill_switch_engaged") == 0
    assert value(sent, "agent_pipeline_metrics_snapshot_fresh") == 0
    assert value(sent, "agent_pipeline_metrics_snapshot_age_seconds") is None  # nothing was ever pushed


_PUSH_ONCE = ("import sys; from agent_pipeline.metrics.config import MetricsConfig; "
              "from agent_pipeline.metrics.publish import publish; "
              "print(publish(MetricsConfig(gateway_url=sys.argv[1])).status)")


def _outage_lines(caplog) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records
            if r.name == "agent_pipeline.metrics.publish" and r.levelname in ("WARNING", "INFO")]


def test_an_outage_is_logged_once_across_processes_and_its_end_once_while_every_failure_is_counted(store, caplog):
    caplog.set_level(logging.INFO, logger="agent_pipeline.metrics.publish")
    write(store, event("a", 1))
    down = f"http://127.0.0.1:{free_port()}"
    assert push(down).status == "failed"
    other = subprocess.run([sys.executable, "-c", _PUSH_ONCE, down], capture_output=True, text=True, timeout=120)
    assert other.stdout.strip() == "failed" and "metrics:" not in other.stderr  # another process, same outage
    assert push(down).status == "failed"
    lines = _outage_lines(caplog)
    assert [lvl for lvl, _ in lines] == ["WARNING"] and down in lines[0][1]
    assert "ops/start-local-stack.sh" in lines[0][1] and "AGENT_PIPELINE_PUSHGATEWAY_URL" in lines[0][1]
    assert read_state().failures == 3

    caplog.clear()
    with Gateway() as gw:
        first, second = push(gw.url), push(gw.url)
    assert first.ok and first.recovered and second.ok and not second.recovered
    assert [(lvl, "3 failed" in msg) for lvl, msg in _outage_lines(caplog)] == [("INFO", True)]
    assert value(samples(gw.requests[-1]["body"]), "agent_pipeline_metrics_push_failures_total") == 3

    caplog.clear()
    again = push(down)  # a new outage is reported again
    assert again.outage_started and [lvl for lvl, _ in _outage_lines(caplog)] == ["WARNING"]
    assert read_state().failures == 4


def test_the_dagster_resource_logs_an_outage_once(store, caplog):
    from agent_pipeline.defs.metrics import PushgatewayResource

    caplog.set_level(logging.INFO, logger="dagster_log_under_test")
    logger = logging.getLogger("dagster_log_under_test")
    down = PushgatewayResource.of(gateway_url=f"http://127.0.0.1:{free_port()}", timeout_s=1)
    results = [down.publish(logger) for _ in range(3)]
    assert [r.status for r in results] == ["failed"] * 3
    assert [r.levelname for r in caplog.records if r.name == "dagster_log_under_test"] == ["WARNING"]
