"""The kill switch cannot be replayed: its state counts only as the result of the audit log's last row."""

import hashlib
import json
import shutil

import pytest

from agent_pipeline.trading import KillSwitch, KillSwitchState

KEY = b"kill-switch-test-key-0123456789ab"


def _plain_checksum(body, fields=None):
    payload = {k: body[k] for k in (fields or sorted(k for k in body if k != "checksum"))}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _halted_for(status, *words):
    assert status.state is KillSwitchState.HALTED and not status.readable, status
    for word in words:
        assert word in status.reason, status.reason


@pytest.fixture
def tripped_after_a_clear(tmp_path):
    """A switch that was ACTIVE (version 2, saved as ``active_copy``) and is now HALTED (version 3)."""
    path = tmp_path / "kill_switch.json"
    KillSwitch(path).trip("first incident", by="sensor")
    KillSwitch(path).clear("fixed", by="alice")
    copy = tmp_path / "active_copy.json"
    shutil.copy2(path, copy)
    KillSwitch(path).trip("second incident", by="gate")
    return path, copy


def test_an_older_valid_file_copied_back_reads_halted(tripped_after_a_clear):
    path, copy = tripped_after_a_clear
    path.write_bytes(copy.read_bytes())
    _halted_for(KillSwitch(path).status(), "version 2", "older than the last audited version 3")


def test_an_older_valid_file_renamed_into_place_reads_halted(tripped_after_a_clear):
    path, copy = tripped_after_a_clear
    copy.replace(path)  # a new inode, as an atomic writer would make
    _halted_for(KillSwitch(path).status(), "older")


def test_a_symlink_to_an_older_valid_file_reads_halted(tripped_after_a_clear):
    path, copy = tripped_after_a_clear
    path.unlink()
    path.symlink_to(copy)
    _halted_for(KillSwitch(path).status(), "symbolic link")


@pytest.mark.parametrize("fmt", ["prototype", "current"])
def test_a_hand_written_file_with_a_recomputed_checksum_reads_halted(tripped_after_a_clear, fmt):
    path, _ = tripped_after_a_clear
    body = {"state": "ACTIVE", "reason": "resumed by hand", "by": "mallory", "at": "2026-01-01T00:00:00+00:00",
            "version": 4}
    if fmt == "prototype":
        body["checksum"] = _plain_checksum(body, ("state", "reason", "by", "at", "version"))
    else:
        body["alg"] = "sha256"
        body["checksum"] = _plain_checksum(body)
    path.write_text(json.dumps(body))
    _halted_for(KillSwitch(path).status(), "version 4 has no audit row")
    body["version"] = 3  # the last audited version, but the audit says HALTED
    body["checksum"] = (_plain_checksum(body, ("state", "reason", "by", "at", "version")) if fmt == "prototype"
                        else _plain_checksum(body))
    path.write_text(json.dumps(body))
    _halted_for(KillSwitch(path).status())


def test_a_hand_written_active_file_without_any_audit_reads_halted(tmp_path):
    path = tmp_path / "kill_switch.json"
    body = {"state": "ACTIVE", "reason": "", "by": "", "at": "", "version": 1}
    body["checksum"] = _plain_checksum(body, ("state", "reason", "by", "at", "version"))
    path.write_text(json.dumps(body))
    _halted_for(KillSwitch(path).status(), "no audit row")


def test_an_old_audit_row_appended_with_its_old_state_reads_halted(tmp_path):
    """Copying the ACTIVE row (and its state) to the end of the log does not make it the last change."""
    path = tmp_path / "kill_switch.json"
    kill = KillSwitch(path)
    kill.clear("start")
    active_state, active_row = path.read_bytes(), kill.audit_path.read_bytes().splitlines()[-1]
    KillSwitch(path).trip("incident")
    with open(kill.audit_path, "ab") as fh:
        fh.write(active_row + b"\n")
    path.write_bytes(active_state)
    _halted_for(KillSwitch(path).status())


def test_a_state_matching_the_version_but_not_the_audited_state_reads_halted(tmp_path):
    """Same version, valid checksum, but not the file the last audit row wrote (its state_checksum differs)."""
    path = tmp_path / "kill_switch.json"
    KillSwitch(path).trip("incident", by="sensor")
    body = json.loads(path.read_text())
    body["reason"] = "nothing to see"
    body["checksum"] = _plain_checksum(body)
    path.write_text(json.dumps(body))
    _halted_for(KillSwitch(path).status(), "not the one audit row 1 wrote")


def test_a_running_reader_refuses_a_rollback_of_both_files(tmp_path):
    """Truncating the audit and restoring the matching old state together: a process that saw the newer
    version refuses to go back (a process started afterwards cannot know; the key makes forging impossible)."""
    path = tmp_path / "kill_switch.json"
    kill = KillSwitch(path)
    kill.clear("start")
    old_state, old_audit = path.read_bytes(), kill.audit_path.read_bytes()
    gate_side = KillSwitch(path)
    assert gate_side.state is KillSwitchState.ACTIVE
    KillSwitch(path).trip("incident")
    assert gate_side.state is KillSwitchState.HALTED
    kill.audit_path.write_bytes(old_audit)
    path.write_bytes(old_state)
    _halted_for(gate_side.status(), "rolled back")


def test_a_crash_between_audit_and_state_reads_halted(tmp_path):
    """The audit row of a clear is written, the state replace never happened: HALTED, and a retry clears."""
    path = tmp_path / "kill_switch.json"
    kill = KillSwitch(path)
    kill.trip("incident")
    halted_state = path.read_bytes()
    kill.clear("resume")
    path.write_bytes(halted_state)  # as if the process died after the audit append
    _halted_for(KillSwitch(path).status(), "older than the last audited version")
    assert KillSwitch(path).clear("resume again").state is KillSwitchState.ACTIVE
    assert KillSwitch(path).status().readable


def test_a_torn_audit_append_reads_halted_and_the_next_change_repairs_it(tmp_path):
    path = tmp_path / "kill_switch.json"
    kill = KillSwitch(path)
    kill.clear("start")
    with open(kill.audit_path, "ab") as fh:
        fh.write(b'{"at": "2026-')  # the start of a row, no newline
    _halted_for(KillSwitch(path).status(), "damaged")
    assert KillSwitch(path).trip("after the crash").state is KillSwitchState.HALTED
    assert KillSwitch(path).status().readable
    assert KillSwitch(path).clear("repaired").state is KillSwitchState.ACTIVE
    assert [r.get("action") for r in KillSwitch(path).audit()][-2:] == ["trip", "clear"]


def test_prototype_files_still_read_as_their_state(tmp_path):
    """A state file and audit rows exactly as the prototype wrote them (no alg, rows without checksums)."""
    path = tmp_path / "kill_switch.json"
    body = {"state": "HALTED", "reason": "old trip", "by": "ops", "at": "2026-01-01T00:00:00+00:00", "version": 2}
    body["checksum"] = _plain_checksum(body, ("state", "reason", "by", "at", "version"))
    path.write_text(json.dumps(body))
    rows = [{"at": "t1", "action": "clear", "from_state": "ACTIVE", "to_state": "ACTIVE", "by": "ops",
             "reason": "init", "version": 1, "committed_at_epoch": 1.0},
            {"at": "t2", "action": "trip", "from_state": "ACTIVE", "to_state": "HALTED", "by": "ops",
             "reason": "old trip", "version": 2, "committed_at_epoch": 2.0}]
    (tmp_path / "kill_switch.json.audit.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    status = KillSwitch(path).status()
    assert status.state is KillSwitchState.HALTED and status.readable and status.reason == "old trip"
    assert KillSwitch(path).clear("upgrade done").state is KillSwitchState.ACTIVE
    assert KillSwitch(path).status().version == 3


# -- with a key --------------------------------------------------------------------------------------------------
def test_a_keyed_switch_works_and_its_files_carry_macs(tmp_path):
    path = tmp_path / "kill_switch.json"
    kill = KillSwitch(path, key=KEY)
    assert kill.state is KillSwitchState.HALTED  # nothing signed yet: a person starts it
    assert "clear" in kill.reason
    assert kill.clear("start", by="alice").state is KillSwitchState.ACTIVE
    assert kill.trip("incident").state is KillSwitchState.HALTED
    assert KillSwitch(path, key=KEY).clear("fixed").state is KillSwitchState.ACTIVE
    assert json.loads(path.read_text())["alg"] == "hmac-sha256"
    assert all(row["alg"] == "hmac-sha256" for row in kill.audit())


def test_with_a_key_a_forged_state_and_audit_row_read_halted(tmp_path):
    """Someone who can write both files but lacks the key forges a matching pair: it does not verify."""
    path = tmp_path / "kill_switch.json"
    KillSwitch(path, key=KEY).clear("start")
    KillSwitch(path, key=KEY).trip("incident")
    audit = path.with_name(path.name + ".audit.jsonl")
    last = audit.read_bytes().splitlines()[-1]
    body = {"state": "ACTIVE", "reason": "forged", "by": "mallory", "at": "x", "version": 3, "alg": "hmac-sha256"}
    body["checksum"] = hashlib.sha256(b"guess").hexdigest()
    row = {"at": "x", "action": "clear", "from_state": "HALTED", "to_state": "ACTIVE", "by": "mallory",
           "reason": "forged", "version": 3, "state_checksum": body["checksum"], "alg": "hmac-sha256",
           "prev": hashlib.sha256(last).hexdigest(), "checksum": hashlib.sha256(b"guess 2").hexdigest()}
    with open(audit, "a") as fh:
        fh.write(json.dumps(row) + "\n")
    path.write_text(json.dumps(body))
    _halted_for(KillSwitch(path, key=KEY).status(), "checksum")
    # the same pair sealed the unkeyed way is refused too: a keyed switch accepts only its MACs
    body["alg"] = row["alg"] = "sha256"
    body["checksum"] = _plain_checksum(body)
    row["state_checksum"] = body["checksum"]
    row["checksum"] = _plain_checksum(row)
    audit.write_bytes(b"\n".join(audit.read_bytes().splitlines()[:-1]) + b"\n" + json.dumps(row).encode() + b"\n")
    path.write_text(json.dumps(body))
    _halted_for(KillSwitch(path, key=KEY).status(), "not signed with AGENT_PIPELINE_KILL_SWITCH_KEY")
    assert KillSwitch(path, key=b"").state is KillSwitchState.ACTIVE  # what an unkeyed reader could not tell


def test_keyed_files_read_halted_without_the_key_and_with_another_key(tmp_path, monkeypatch):
    path = tmp_path / "kill_switch.json"
    KillSwitch(path, key=KEY).clear("start")
    _halted_for(KillSwitch(path, key=b"").status(), "not set")
    _halted_for(KillSwitch(path, key=b"another key").status(), "checksum")
    monkeypatch.setenv("AGENT_PIPELINE_KILL_SWITCH_KEY", KEY.decode())
    assert KillSwitch(path).state is KillSwitchState.ACTIVE  # the key from the environment
