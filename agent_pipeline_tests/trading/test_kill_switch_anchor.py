"""Hidden case 3 of issue 9: the kill switch and its audit log rolled back together.

The two files vouch for each other, so older copies of both (or deleting both) read ACTIVE after a trip. An
anchored switch advances a row in the store with every change and reads as its files say only at the anchored
version; every rollback below read ACTIVE before the anchor existed.
"""

import shutil

import pytest

from agent_pipeline.cli import main
from agent_pipeline.trading import KillSwitch, KillSwitchState
from agent_pipeline.trading.execution import ExecutionLayer
from agent_pipeline.trading.kill_switch import default_path
from agent_pipeline.trading.kill_switch_anchor import StoreAnchor, anchored_switch

from .conftest import BookMarket, Clock, book, proposal

DEEP = book(bid=50_000.0, ask=50_010.0, bid_size=100.0, ask_size=100.0)


def files(kill):
    return [kill.path, kill.audit_path]


def snapshot(kill, into):
    into.mkdir()
    for path in files(kill):
        shutil.copy2(path, into / path.name)
    return into


def restore(kill, saved):
    for path in files(kill):
        path.unlink()
        shutil.copy2(saved / path.name, path)


def fresh(path):
    return anchored_switch(path, key=b"")


def cleared_then_tripped(tmp_path):
    path = tmp_path / "kill_switch.json"
    kill = fresh(path)
    kill.clear("start", by="ops")
    saved = snapshot(kill, tmp_path / "active_copy")
    kill.trip("incident", by="ops")
    return path, saved


def test_both_files_rolled_back_to_an_older_active_pair_read_halted(tmp_path):
    path, saved = cleared_then_tripped(tmp_path)
    restore(fresh(path), saved)
    unanchored = KillSwitch(path, key=b"")
    assert unanchored.state is KillSwitchState.ACTIVE  # the files alone cannot tell: this is the attack
    status = fresh(path).status()
    assert status.state is KillSwitchState.HALTED and "rolled back together" in status.reason


def test_both_files_deleted_read_halted(tmp_path):
    path, _ = cleared_then_tripped(tmp_path)
    kill = fresh(path)
    for f in files(kill):
        f.unlink()
    status = fresh(path).status()
    assert status.state is KillSwitchState.HALTED and "missing" in status.reason


def test_a_change_that_was_never_anchored_reads_halted(tmp_path):
    path = tmp_path / "kill_switch.json"
    KillSwitch(path, key=b"").clear("written without the anchor", by="ops")
    status = fresh(path).status()
    assert status.state is KillSwitchState.HALTED and "no anchor" in status.reason


def test_a_person_recovers_by_clearing_which_anchors_a_new_version(tmp_path):
    path, saved = cleared_then_tripped(tmp_path)
    restore(fresh(path), saved)
    cleared = fresh(path).clear("files restored from backup, reviewed", by="ops")
    assert cleared.state is KillSwitchState.ACTIVE and cleared.version == 3
    assert StoreAnchor.beside(path).read() == 3 and fresh(path).state is KillSwitchState.ACTIVE


def test_the_anchor_never_goes_down(tmp_path):
    anchor = StoreAnchor.beside(tmp_path / "kill_switch.json")
    anchor.advance(5, "HALTED")
    anchor.advance(3, "ACTIVE")
    assert anchor.read() == 5


def test_an_unreadable_anchor_reads_halted(tmp_path):
    path, _ = cleared_then_tripped(tmp_path)
    store_file = StoreAnchor.beside(path).store.path
    store_file.write_bytes(b"not a database")
    status = fresh(path).status()
    assert status.state is KillSwitchState.HALTED and "anchor cannot be read" in status.reason


def test_the_gate_refuses_orders_after_a_rollback(store, tmp_path):
    path = tmp_path / "kill_switch.json"
    kill = anchored_switch(path, store, key=b"")
    kill.clear("start", by="ops")
    saved = snapshot(kill, tmp_path / "active_copy")
    kill.trip("incident", by="ops")
    restore(kill, saved)
    ex = ExecutionLayer(store, BookMarket([DEEP]), kill_switch=anchored_switch(path, store, key=b""), clock=Clock())
    report = ex.execute({"agent": "a", "event_id": "ev1", "output": [proposal(books=[DEEP])]}, run_id="r1")
    assert report.filled == 0 and report.by_reason == {"KILL_SWITCH_UNREADABLE": 1}


def test_the_cli_anchors_its_changes_and_reads_through_the_anchor(pipeline_home, capsys):
    assert main(["kill-switch", "clear", "--reason", "start"]) == 0
    kill = KillSwitch(default_path())
    saved = snapshot(kill, pipeline_home / "copy")
    assert main(["kill-switch", "trip", "--reason", "incident"]) == 0
    restore(kill, saved)
    capsys.readouterr()
    assert main(["kill-switch", "status"]) == 1
    assert "rolled back together" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["reduce", "clear"])
def test_a_change_whose_anchor_cannot_be_written_is_an_error_and_reads_halted(tmp_path, action):
    path = tmp_path / "kill_switch.json"
    anchor = StoreAnchor.beside(path)
    fresh(path).trip("incident", by="ops")
    anchor.store.path.write_bytes(b"not a database")
    from agent_pipeline.trading.kill_switch import KillSwitchError

    with pytest.raises(KillSwitchError, match="anchor"):
        getattr(fresh(path), action)("try", by="ops")
    assert fresh(path).state is KillSwitchState.HALTED
