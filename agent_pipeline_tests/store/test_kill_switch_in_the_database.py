"""The kill switch of a shared store lives in its database: every host reads the same state, and it fails closed."""

from __future__ import annotations

import pytest

from agent_pipeline.market import SimulatedMarket
from agent_pipeline.store import Store
from agent_pipeline.trading.config import ExecutionConfig, GuardrailConfig
from agent_pipeline.trading.execution import ExecutionLayer
from agent_pipeline.trading.kill_switch import KillSwitch, KillSwitchError, KillSwitchState
from agent_pipeline.trading.kill_switch_store import DatabaseKillSwitch, kill_switch_for


@pytest.fixture
def database(postgres_url):
    return Store(postgres_url)


def test_a_trip_on_one_host_is_what_every_other_host_reads(database):
    here, there = DatabaseKillSwitch(Store(database.url), key=b""), DatabaseKillSwitch(Store(database.url), key=b"")
    assert here.state is there.state is KillSwitchState.ACTIVE
    assert there.status().reason == "never tripped"
    here.trip("drawdown", by="alice")
    status = there.status()
    assert status.state is KillSwitchState.HALTED and status.reason == "drawdown" and status.by == "alice"
    there.reduce("later", by="bob")  # latched: a reduce never lowers a halt
    assert here.state is KillSwitchState.HALTED
    there.clear("checked the books", by="bob")
    assert here.state is KillSwitchState.ACTIVE
    assert [r["action"] for r in here.audit()] == ["trip", "reduce", "clear"]
    assert [r["version"] for r in here.audit(2)] == [2, 3]


def test_a_forged_or_rolled_back_row_reads_halted(database):
    switch = DatabaseKillSwitch(database, key=b"")
    switch.trip("incident")
    switch.clear("resolved")
    with database.connect() as conn:  # someone with write access to the table makes the switch say ACTIVE
        conn.execute("UPDATE kill_switch_audit SET to_state = 'ACTIVE', reason = 'fine' WHERE version = 1")
        conn.execute("DELETE FROM kill_switch_audit WHERE version = 2")
    status = switch.status()
    assert status.state is KillSwitchState.HALTED and not status.readable
    assert "older than version 2" in status.reason or "checksum" in status.reason
    fresh = DatabaseKillSwitch(database, key=b"")  # a process that never saw version 2 still sees the forgery
    assert fresh.state is KillSwitchState.HALTED and "checksum" in fresh.status().reason


def test_a_removed_row_breaks_the_chain(database):
    switch = DatabaseKillSwitch(database, key=b"")
    for reason in ("one", "two", "three"):
        switch.trip(reason)
        switch.clear(reason)
    with database.connect() as conn:
        conn.execute("DELETE FROM kill_switch_audit WHERE version = 5")
    status = DatabaseKillSwitch(database, key=b"").status()
    assert status.state is KillSwitchState.HALTED and "does not follow" in status.reason


def test_with_a_key_an_empty_or_unsigned_switch_reads_halted(database):
    keyed = DatabaseKillSwitch(database, key=b"k1")
    assert keyed.state is KillSwitchState.HALTED and "starts HALTED" in keyed.reason
    DatabaseKillSwitch(database, key=b"").clear("unsigned")
    assert DatabaseKillSwitch(database, key=b"k1").state is KillSwitchState.HALTED
    keyed.clear("signed by an operator with the key")
    assert DatabaseKillSwitch(database, key=b"k1").state is KillSwitchState.ACTIVE
    assert DatabaseKillSwitch(database, key=b"other").state is KillSwitchState.HALTED


def test_a_database_that_does_not_answer_reads_halted_and_a_change_says_it_failed(postgres_server):
    gone = Store(f"postgresql://postgres@127.0.0.1:{postgres_server.port + 1}/none?connect_timeout=1")
    switch = DatabaseKillSwitch(gone, key=b"", lock_timeout_s=0.5)
    status = switch.status()
    assert status.state is KillSwitchState.HALTED and "does not answer" in status.reason
    with pytest.raises(KillSwitchError, match="not cleared"):
        switch.clear("resume")
    with pytest.raises(KillSwitchError, match="trip FAILED"):
        switch.trip("halt")


def test_a_trip_while_the_store_is_held_is_written_anyway_and_says_so(database):
    switch = DatabaseKillSwitch(database, key=b"", lock_timeout_s=0.2)
    switch.clear("start")
    with database.connect():  # a gate holding the store's write lock for too long
        status = switch.trip("now")
    assert status.state is KillSwitchState.HALTED
    assert any("without the store's lock" in p for p in status.problems)
    with database.connect():
        with pytest.raises(KillSwitchError, match="busy"):
            switch.clear("not while busy")
    assert switch.state is KillSwitchState.HALTED


def test_the_gate_of_another_host_denies_once_one_host_tripped(database, tmp_path):
    from agent_pipeline_tests.trading.conftest import market_signal

    switch = DatabaseKillSwitch(database, key=b"")
    layer = ExecutionLayer(database, SimulatedMarket(fault_rate=0.0, stale_prob=0.0), guardrails=GuardrailConfig(),
                           execution=ExecutionConfig(default_capital_usd=10_000.0), kill_switch=switch)
    run = {"agent": "momentum", "strategy": "momentum", "event_id": "e1", "output": [market_signal()]}
    assert layer.execute(run, run_id="r1").approved == 1
    DatabaseKillSwitch(Store(database.url), key=b"").trip("other host", by="ops")
    report = layer.execute({**run, "event_id": "e2"}, run_id="r2")
    assert report.approved == 0 and report.by_reason.get("KILL_SWITCH_HALTED") == 1
    assert report.kill_switch_state == "HALTED"


def test_the_embedded_store_keeps_the_file(tmp_path):
    assert isinstance(kill_switch_for(str(tmp_path / "a.duckdb"), tmp_path / "ks.json"), KillSwitch)
    assert isinstance(kill_switch_for("", tmp_path / "ks.json"), KillSwitch)
    assert isinstance(kill_switch_for("postgresql://h/db", tmp_path / "ks.json"), DatabaseKillSwitch)
