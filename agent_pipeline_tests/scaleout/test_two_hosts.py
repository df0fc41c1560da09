"""Two hosts, each with its own AGENT_PIPELINE_HOME and processes, sharing only the PostgreSQL store: every run
is stored once, the gate's global rate limit holds across them, a trip on one halts the other within a second,
and neither writes pipeline state to its own disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent_pipeline.store import Store
from agent_pipeline.store.config import STORE_URL_ENV
from agent_pipeline.trading.kill_switch_store import DatabaseKillSwitch

WORKER = Path(__file__).with_name("host_worker.py")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(WORKER.parent))
from host_worker import ORDERS_PER_WINDOW  # noqa: E402


def _host_env(home: Path, url: str) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_PIPELINE_")}
    return {**env, "AGENT_PIPELINE_HOME": str(home), STORE_URL_ENV: url,
            "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])}


def _start(mode: str, seconds: float, name: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), mode, str(seconds), name], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _result(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _rows(url: str, sql: str):
    with Store(url).connect(read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_two_hosts_store_every_run_once_and_share_the_rate_limit(postgres_url, tmp_path):
    hosts = {name: _host_env(tmp_path / name, postgres_url) for name in ("host_a", "host_b")}
    workers = [_start("runs", 4.0, f"{host}-w{i}", env) for host, env in hosts.items() for i in range(2)]
    results = [_result(w) for w in workers]

    runs = [event for r in results for event in r["events"]]
    assert len(runs) >= 8  # each worker ran several times in its bounded time
    stored = _rows(postgres_url, "SELECT event_id, count(*) FROM agent_events GROUP BY event_id")
    assert sorted(e for e, _ in stored) == sorted(runs) and {n for _, n in stored} == {1}

    # the global limit holds across hosts: exactly that many orders, every other proposal denied for it
    assert _rows(postgres_url, "SELECT count(*) FROM orders") == [(ORDERS_PER_WINDOW,)], [r["reasons"] for r in results]
    assert sum(r["approved"] for r in results) == ORDERS_PER_WINDOW
    decisions = dict(_rows(postgres_url, "SELECT reason_code, count(*) FROM gate_decisions GROUP BY reason_code"))
    assert decisions == {"OK": ORDERS_PER_WINDOW, "GLOBAL_RATE_LIMIT": len(runs) - ORDERS_PER_WINDOW}
    assert {r["store"] for r in results} == {Store(postgres_url).location}

    for env in hosts.values():  # nothing of the pipeline's state on either host's disk
        assert sorted(p.name for p in Path(env["AGENT_PIPELINE_HOME"]).iterdir()) == []


def test_a_trip_on_one_host_halts_the_other_within_a_second(postgres_url, tmp_path):
    DatabaseKillSwitch(Store(postgres_url), key=b"").clear("start of the test")
    watcher = _start("watch", 20.0, "host_b", _host_env(tmp_path / "host_b", postgres_url))
    assert json.loads(watcher.stdout.readline()) == {"ready": "ACTIVE"}
    time.sleep(0.3)
    env = _host_env(tmp_path / "host_a", postgres_url)
    trip = subprocess.run([sys.executable, "-m", "agent_pipeline.cli", "kill-switch", "trip", "--reason",
                           "incident on host a", "--by", "ops"], env=env, capture_output=True, text=True, timeout=60)
    tripped_at = time.time()
    assert trip.returncode == 0, trip.stderr
    seen = _result(watcher)
    assert seen["halted_at"] is not None and seen["reason"] == "incident on host a"
    assert seen["halted_at"] - tripped_at < 1.0
    assert not (tmp_path / "host_a" / "kill_switch.json").exists()  # the trip went to the database


@pytest.mark.parametrize("_", [0])
def test_the_cli_reads_the_switch_of_the_shared_store(postgres_url, tmp_path, _):
    env = _host_env(tmp_path / "host_c", postgres_url)
    DatabaseKillSwitch(Store(postgres_url), key=b"").trip("halted elsewhere")
    status = subprocess.run([sys.executable, "-m", "agent_pipeline.cli", "kill-switch", "status", "--json"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    body = json.loads(status.stdout)
    assert body["state"] == "HALTED" and body["reason"] == "halted elsewhere"
    assert "kill_switch_audit" in body["path"] and body["audit"][-1]["action"] == "trip"
