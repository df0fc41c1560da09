"""The push state file and the push lock: a FIFO, device, directory or link there never hangs or fails a push,
``/metrics`` or a read; it counts as "no state" (or skips the push) and says so in the log."""

import json
import urllib.request

import pytest

from agent_pipeline.metrics.config import MetricsConfig
from agent_pipeline.metrics.publish import LOCK_FILE, STATE_FILE, exposition, publish, read_state, serve
from agent_pipeline.trading import KillSwitch
from agent_pipeline_tests.conftest import free_port
from agent_pipeline_tests.hostile_files import plant, within
from agent_pipeline_tests.metrics.helpers import event, samples, value, write

DEADLINE_S = 10.0


def _counted_state(home, pushes=5, failures=2):
    (home / "counted.json").write_text(json.dumps({"pushes": pushes, "failures": failures}))
    return home / "counted.json"


@pytest.mark.parametrize("kind", ["fifo", "socket", "directory", "symlink", "device"])
def test_a_special_push_state_reads_as_no_state_without_blocking(pipeline_home, kind):
    path = plant(kind, pipeline_home / STATE_FILE, _counted_state(pipeline_home))
    state = within(DEADLINE_S, read_state, fifos=[path])
    assert (state.pushes, state.failures) == (0, 0)  # the linked file's counters are not followed


def test_metrics_exposition_does_not_hang_on_fifo_state_files(store, pipeline_home):
    write(store, event("a", 1))
    KillSwitch(pipeline_home / "kill_switch.json").clear("start")
    (pipeline_home / "kill_switch.json").unlink()
    fifos = [plant("fifo", pipeline_home / STATE_FILE), plant("fifo", pipeline_home / "kill_switch.json")]
    parsed = samples(within(DEADLINE_S, exposition, fifos=fifos))
    assert value(parsed, "trading_kill_switch_engaged") == 1.0
    assert value(parsed, "agent_pipeline_metrics_pushes_total") == 0
    assert value(parsed, "agent_runs_total", agent="a") == 1


def test_the_metrics_endpoint_answers_with_a_fifo_push_state(store, pipeline_home):
    write(store, event("a", 1))
    fifo = plant("fifo", pipeline_home / STATE_FILE)
    server, _thread = serve(port=free_port())
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        body = within(DEADLINE_S, lambda: urllib.request.urlopen(url, timeout=DEADLINE_S).read(), fifos=[fifo])
    finally:
        server.shutdown()
    assert value(samples(body), "agent_pipeline_metrics_push_failures_total") == 0


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink", "dangling_symlink", "socket"])
def test_a_damaged_push_lock_skips_the_push_instead_of_raising_or_hanging(store, pipeline_home, kind):
    write(store, event("a", 1))
    lock = plant(kind, pipeline_home / LOCK_FILE, pipeline_home)
    config = MetricsConfig(gateway_url=f"http://127.0.0.1:{free_port()}", lock_timeout_s=0.5)
    result = within(DEADLINE_S, lambda: publish(config), fifos=[lock])
    assert result.status == "lock_unusable" and "not a regular file" in result.error


def test_a_push_with_a_fifo_state_completes_and_replaces_it(store, pipeline_home):
    write(store, event("a", 1))
    fifo = plant("fifo", pipeline_home / STATE_FILE)
    config = MetricsConfig(gateway_url=f"http://127.0.0.1:{free_port()}")
    result = within(DEADLINE_S, lambda: publish(config), fifos=[fifo])
    assert result.status == "failed"  # nothing listens there; the push itself went through its steps
    assert read_state().failures == 1  # the FIFO was replaced by a regular state file


def test_a_push_state_directory_is_logged_not_raised(store, pipeline_home, caplog):
    write(store, event("a", 1))
    plant("directory", pipeline_home / STATE_FILE)
    result = publish(MetricsConfig(gateway_url=f"http://127.0.0.1:{free_port()}"))
    assert result.status == "failed" and "cannot save push state" in caplog.text


@pytest.mark.parametrize("content", ['{"pushes": "many"}', '{"failures": NaN}', '{"pushes": -3}', "[1, 2]",
                                     '{"last_error": 5}', '{"pushes": 1e400}'])
def test_push_state_with_values_of_the_wrong_kind_reads_as_no_state(store, pipeline_home, content):
    write(store, event("a", 1))
    (pipeline_home / STATE_FILE).write_text(content)
    assert read_state().pushes == 0 and read_state().failures == 0
    parsed = samples(exposition())
    assert value(parsed, "agent_pipeline_metrics_pushes_total") == 0
