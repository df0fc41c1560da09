"""The kill switch: latched, persisted, fail-closed on bad state, audited."""

import json
import threading
import time

import pytest

from agent_pipeline.trading import KillSwitch, KillSwitchState
from agent_pipeline.trading.kill_switch import default_path


def test_in_memory_keeps_the_prototype_api():
    kill = KillSwitch()
    assert not kill.enabled and kill.state is KillSwitchState.ACTIVE
    kill.trip("manual")
    assert kill.enabled and kill.reason == "manual"
    kill.clear()
    assert not kill.enabled and kill.reason == "cleared"


def test_persisted_state_survives_restart_and_stays_latched(tmp_path):
    path = tmp_path / "ks.json"
    KillSwitch(path).trip("fault storm", by="sensor")
    KillSwitch(path).trip("second reason", by="gate")
    restarted = KillSwitch(path)
    assert restarted.state is KillSwitchState.HALTED
    assert restarted.reason == "fault storm"  # the first cause stays until a person clears
    restarted.reduce("try to downgrade")
    assert KillSwitch(path).state is KillSwitchState.HALTED  # a trip is never downgraded to reduce-only
    KillSwitch(path).clear("investigated", by="alice")
    assert KillSwitch(path).state is KillSwitchState.ACTIVE
    rows = KillSwitch(path).audit()
    assert [r["action"] for r in rows] == ["trip", "trip", "reduce", "clear"]
    assert rows[0]["by"] == "sensor" and rows[1]["reason"] == "second reason"
    assert rows[-1] == {**rows[-1], "by": "alice", "reason": "investigated", "from_state": "HALTED",
                        "to_state": "ACTIVE"}
    assert all(r["at"] for r in rows)


def test_default_path_is_under_the_pipeline_home(pipeline_home):
    assert default_path() == pipeline_home / "kill_switch.json"
    assert KillSwitch(default_path()).state is KillSwitchState.ACTIVE


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'{"state": "ACTIVE"}', b"\x00\xff garbage",
                                     b'{"state": "PAUSED", "reason": "", "by": "", "at": "", "version": 1}'])
def test_corrupt_state_reads_as_halted(tmp_path, content):
    path = tmp_path / "ks.json"
    path.write_bytes(content)
    status = KillSwitch(path).status()
    assert status.state is KillSwitchState.HALTED and not status.readable
    assert "unreadable" in status.reason


def test_hand_edited_state_fails_its_checksum(tmp_path):
    path = tmp_path / "ks.json"
    KillSwitch(path).trip("halt")
    body = json.loads(path.read_text())
    body["state"] = "ACTIVE"
    path.write_text(json.dumps(body))
    assert KillSwitch(path).state is KillSwitchState.HALTED


def test_unreadable_and_deleted_state_reads_as_halted(tmp_path):
    path = tmp_path / "ks.json"
    path.mkdir()  # reading a directory fails even for root
    assert KillSwitch(path).state is KillSwitchState.HALTED
    other = tmp_path / "other.json"
    KillSwitch(other).trip("halt")
    other.unlink()  # deleting the file must not resume trading once anything was audited
    assert KillSwitch(other).state is KillSwitchState.HALTED


def test_clear_of_a_corrupt_file_writes_a_fresh_state(tmp_path):
    path = tmp_path / "ks.json"
    path.write_text("{broken")
    KillSwitch(path).clear("rewrote after disk repair", by="ops")
    assert KillSwitch(path).state is KillSwitchState.ACTIVE


def test_trip_waits_for_an_open_guard_and_guard_trips_apply_on_exit(tmp_path):
    path = tmp_path / "ks.json"
    gate_side = KillSwitch(path)
    done = threading.Event()
    with gate_side.guard() as status:
        assert status.state is KillSwitchState.ACTIVE
        t = threading.Thread(target=lambda: (KillSwitch(path).trip("from the CLI"), done.set()))
        t.start()
        time.sleep(0.2)
        assert not done.is_set()  # the trip waits for orders in flight to commit
        gate_side.trip("daily loss")  # inside the guard: immediate here, persisted on exit
        assert gate_side.state is KillSwitchState.HALTED
    t.join(5)
    assert done.is_set()
    assert KillSwitch(path).state is KillSwitchState.HALTED
    assert {r["reason"] for r in KillSwitch(path).audit()} == {"from the CLI", "daily loss"}


def test_guard_fails_closed_when_the_lock_is_held(tmp_path):
    path = tmp_path / "ks.json"
    holder = KillSwitch(path)
    with holder._lock(__import__("fcntl").LOCK_EX):
        with KillSwitch(path, lock_timeout_s=0.05).guard() as status:
            assert status.state is KillSwitchState.HALTED


def test_a_reader_sees_a_trip_by_another_writer_at_once(tmp_path):
    path = tmp_path / "ks.json"
    KillSwitch(path).clear("start")
    reader = KillSwitch(path)
    for _ in range(3):
        assert reader.state is KillSwitchState.ACTIVE  # served from the stat-validated cache
    KillSwitch(path).trip("elsewhere")
    assert reader.state is KillSwitchState.HALTED
    KillSwitch(path).clear("back")
    assert reader.state is KillSwitchState.ACTIVE
    path.write_text(path.read_text().replace('"back"', '"edited in place!"'))  # same inode, new size
    assert reader.state is KillSwitchState.HALTED


def test_long_reasons_are_clipped_and_long_rows_still_validate(tmp_path):
    """Rows far larger than the small tail the reader tries first (non-ASCII text is escaped six-fold)."""
    path = tmp_path / "ks.json"
    KillSwitch(path).trip("\u00e9" * 5_000, by="\u00e8" * 5_000)
    KillSwitch(path).clear("\u00e0" * 1_900, by="ops")
    KillSwitch(path).trip("\u00e7" * 1_900, by="\u00f9" * 1_900)
    status = KillSwitch(path).status()
    assert status.state is KillSwitchState.HALTED and status.readable
    assert status.reason.startswith("\u00e7" * 1_900)
    first = KillSwitch(path).audit()[0]
    assert len(first["reason"]) < 2_100 and first["reason"].endswith("[clipped]")


def test_audit_rows_record_the_os_user_beside_the_claimed_name(tmp_path):
    from agent_pipeline.trading.identities import os_user

    path = tmp_path / "ks.json"
    KillSwitch(path).trip("halt", by="somebody else")
    (row,) = KillSwitch(path).audit()
    assert row["by"] == "somebody else" and row["os_user"] == os_user()
