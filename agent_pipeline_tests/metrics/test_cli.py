"""``agent-pipeline metrics serve`` exposes the collector on 127.0.0.1 and answers while the store is busy;
``metrics push`` publishes once."""

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from agent_pipeline.cli import main
from agent_pipeline.trading import KillSwitch
from agent_pipeline_tests.conftest import free_port
from agent_pipeline_tests.metrics.helpers import assert_matches_store, event, held_store, samples, value, write
from agent_pipeline_tests.metrics.test_publish import Gateway


def test_push_once_and_exit_code(store, capsys):
    write(store, event("a", 1))
    with Gateway() as gw:
        assert main(["metrics", "push", "--gateway", gw.url]) == 0
    assert "pushed: 1 events" in capsys.readouterr().out
    assert value(samples(gw.requests[0]["body"]), "agent_runs_total", agent="a") == 1
    assert main(["metrics", "push", "--gateway", f"http://127.0.0.1:{free_port()}", "--timeout", "1"]) == 1
    assert "failed" in capsys.readouterr().err


def test_serve_binds_loopback_and_serves_the_store(store, pipeline_home):
    write(store, event("a", 1, reward=-0.4), event("a", 2, error="x"))
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("agent-pipeline")), "metrics", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        body = None
        for _ in range(150):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        assert body is not None, proc.stderr.read() if proc.poll() is not None else "no answer"
        assert_matches_store(samples(body), store)
        write(store, event("a", 3))  # each scrape recomputes from the store
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert value(samples(body), "agent_runs_total", agent="a") == 3
        out = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
        listening = [line for line in out.splitlines() if f":{port} " in line]
        assert listening and all("127.0.0.1:" in line for line in listening), listening
        # another process holds the store: the scrape still answers well within Prometheus' 10 s scrape timeout
        with held_store():
            KillSwitch(pipeline_home / "kill_switch.json").trip("tripped while the store is held")
            t0 = time.monotonic()
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=9).read()
            took = time.monotonic() - t0
        parsed = samples(body)
        assert took < 5, took
        assert value(parsed, "trading_kill_switch_engaged") == 1
        assert value(parsed, "agent_runs_total", agent="a") == 3  # the last good snapshot
        assert value(parsed, "agent_pipeline_metrics_snapshot_fresh") == 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
