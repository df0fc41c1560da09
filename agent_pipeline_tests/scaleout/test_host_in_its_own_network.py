"""One host in a network namespace of its own, reaching the database only over a veth link: it stores its runs,
shares the gate's limit with the host outside, and is halted by a trip from there.

Needs root and ``ip netns`` (skipped, saying why, where the machine does not allow it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from agent_pipeline.store import Store
from agent_pipeline.trading.kill_switch_store import DatabaseKillSwitch
from agent_pipeline_tests.postgres_server import PostgresServer, binaries, unavailable
from agent_pipeline_tests.scaleout.test_two_hosts import ORDERS_PER_WINDOW, WORKER, _host_env, _result, _rows

NETNS = f"agent_pipeline_{os.getpid()}"
HOST_SIDE, NS_SIDE = f"apv{os.getpid() % 100000}h", f"apv{os.getpid() % 100000}n"
HOST_IP, NS_IP, PREFIX = "10.231.77.1", "10.231.77.2", "10.231.77.0/30"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def namespace():
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("network namespaces need root and the ip tool (iproute2)")
    try:
        _ip("netns", "add", NETNS)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"ip netns add is not permitted here: {exc.stderr.decode(errors='replace').strip()}")
    try:
        _ip("link", "add", HOST_SIDE, "type", "veth", "peer", "name", NS_SIDE)
        _ip("link", "set", NS_SIDE, "netns", NETNS)
        _ip("addr", "add", f"{HOST_IP}/30", "dev", HOST_SIDE)
        _ip("link", "set", HOST_SIDE, "up")
        _ip("netns", "exec", NETNS, "ip", "addr", "add", f"{NS_IP}/30", "dev", NS_SIDE)
        _ip("netns", "exec", NETNS, "ip", "link", "set", NS_SIDE, "up")
        _ip("netns", "exec", NETNS, "ip", "link", "set", "lo", "up")
        yield NETNS
    finally:
        subprocess.run(["ip", "link", "del", HOST_SIDE], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", NETNS], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def veth_server(namespace):
    """A server listening on the host side of the link only, letting in the namespace's side."""
    bindir = binaries()
    if bindir is None:
        unavailable("no initdb under /usr/lib/postgresql/*/bin or on PATH")
    server = PostgresServer(bindir, listen=HOST_IP, allow=(PREFIX,))
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _in_namespace(args: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", NETNS, *args], env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kwargs)


def test_a_host_behind_a_veth_link_shares_the_store_the_limit_and_the_switch(veth_server, tmp_path):
    url = veth_server.create_database()
    inside = _host_env(tmp_path / "host_ns", url)
    outside = _host_env(tmp_path / "host_out", url)
    # inside the namespace the server's port is not on loopback: only the link reaches it
    probe = _in_namespace([sys.executable, "-c", f"import socket; socket.create_connection(('127.0.0.1', "
                                                  f"{veth_server.port}), timeout=2)"], inside)
    _, err = probe.communicate(timeout=60)
    assert probe.returncode != 0 and "refused" in err.lower()

    workers = [_in_namespace([sys.executable, str(WORKER), "runs", "4", "ns-w0"], inside),
               subprocess.Popen([sys.executable, str(WORKER), "runs", "4", "out-w0"], env=outside, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)]
    results = [_result(w) for w in workers]
    runs = [e for r in results for e in r["events"]]
    assert results[0]["events"], "the namespaced host stored no run"
    stored = _rows(url, "SELECT event_id, count(*) FROM agent_events GROUP BY event_id")
    assert sorted(e for e, _ in stored) == sorted(runs) and {n for _, n in stored} == {1}
    assert _rows(url, "SELECT count(*) FROM orders") == [(ORDERS_PER_WINDOW,)], [r["reasons"] for r in results]

    DatabaseKillSwitch(Store(url), key=b"").clear("before the trip")
    watcher = _in_namespace([sys.executable, str(WORKER), "watch", "20", "ns"], inside)
    assert json.loads(watcher.stdout.readline()) == {"ready": "ACTIVE"}
    DatabaseKillSwitch(Store(url), key=b"").trip("tripped outside the namespace")
    tripped_at = time.time()
    seen = _result(watcher)
    assert seen["reason"] == "tripped outside the namespace" and seen["halted_at"] - tripped_at < 1.0
