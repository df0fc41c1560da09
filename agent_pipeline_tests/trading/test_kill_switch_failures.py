"""Every failure of a trip ends HALTED; a reduce or clear that cannot be audited changes nothing and says why."""

import errno
import fcntl
import subprocess
import sys
import textwrap

import pytest

from agent_pipeline.cli import main
from agent_pipeline.trading import KillSwitch, KillSwitchState
from agent_pipeline.trading.kill_switch import KillSwitchError, default_path
from agent_pipeline_tests.hostile_files import plant, within

DEADLINE_S = 10.0


def _active(path):
    KillSwitch(path).clear("start")
    assert KillSwitch(path).state is KillSwitchState.ACTIVE
    return path


def _damage_lock(kill, kind, which="lock"):
    target = kill.lock_path if which == "lock" else kill.turnstile_path
    if target.exists() or target.is_symlink():
        target.unlink()
    plant(kind, target, kill.path.parent)  # a symlink to a directory: unusable as a lock
    return target


@pytest.mark.parametrize("which", ["lock", "turnstile"])
@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink", "dangling_symlink", "socket"])
def test_a_trip_with_a_damaged_lock_ends_halted_and_says_so(tmp_path, kind, which):
    path = _active(tmp_path / "kill_switch.json")
    kill = KillSwitch(path)
    target = _damage_lock(kill, kind, which)
    status = within(DEADLINE_S, lambda: kill.trip("operator halt", by="ops"), fifos=[target])
    assert status.state is KillSwitchState.HALTED
    assert any("without the lock" in p for p in status.problems)
    after = KillSwitch(path).status()
    assert after.state is KillSwitchState.HALTED and after.readable and after.reason == "operator halt"


def test_a_trip_when_the_lock_is_held_too_long_ends_halted(tmp_path):
    path = _active(tmp_path / "kill_switch.json")
    with KillSwitch(path)._lock(fcntl.LOCK_EX):
        status = KillSwitch(path, lock_timeout_s=0.05).trip("cannot wait", by="ops")
    assert status.state is KillSwitchState.HALTED and "locked for too long" in status.problems[0]
    assert KillSwitch(path).state is KillSwitchState.HALTED


@pytest.mark.parametrize("kind", ["directory", "fifo", "socket"])
def test_a_trip_whose_audit_cannot_be_written_still_reads_halted(tmp_path, kind):
    path = _active(tmp_path / "kill_switch.json")
    kill = KillSwitch(path)
    plant(kind, kill.audit_path)
    status = within(DEADLINE_S, lambda: kill.trip("audit is broken", by="ops"), fifos=[kill.audit_path])
    assert status.state is KillSwitchState.HALTED
    assert any("audit log" in p and "cannot be written" in p for p in status.problems)
    assert KillSwitch(path).state is KillSwitchState.HALTED


def test_a_trip_whose_state_file_cannot_be_replaced_still_reads_halted(tmp_path):
    path = tmp_path / "kill_switch.json"
    plant("directory", path)  # a non-empty directory: no rename can replace it
    status = KillSwitch(path).trip("state path broken")
    assert status.state is KillSwitchState.HALTED and any("cannot be replaced" in p for p in status.problems)
    assert KillSwitch(path).state is KillSwitchState.HALTED


def test_a_trip_on_a_full_disk_empties_the_state_so_it_reads_halted(tmp_path, monkeypatch):
    """Neither the audit row nor a new state file can be written (a full disk, which cannot be produced for real
    here, so both writes are made to fail with ENOSPC) while the old ACTIVE files still read fine: the trip
    truncates the state file, which needs no space, and an empty state reads HALTED."""
    import agent_pipeline.trading.kill_switch as module

    path = _active(tmp_path / "kill_switch.json")
    kill = KillSwitch(path)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(module, "replace_atomically", no_space)
    monkeypatch.setattr(KillSwitch, "_append_audit", no_space)
    status = kill.trip("disk full")
    assert status.state is KillSwitchState.HALTED and any("emptied" in p for p in status.problems)
    assert path.read_bytes() == b"" and KillSwitch(path).state is KillSwitchState.HALTED


@pytest.mark.parametrize("action", ["clear", "reduce"])
def test_a_change_whose_audit_cannot_be_written_changes_nothing(tmp_path, action):
    path = tmp_path / "kill_switch.json"
    KillSwitch(path).trip("incident")
    before = path.read_bytes()
    kill = KillSwitch(path)
    kill.audit_path.unlink()
    plant("directory", kill.audit_path)
    with pytest.raises(KillSwitchError, match="audit log .* cannot be written.*state is unchanged"):
        getattr(kill, action)("try anyway")
    assert path.read_bytes() == before


@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink"])
def test_a_clear_with_a_damaged_lock_changes_nothing_and_says_so(tmp_path, kind):
    path = tmp_path / "kill_switch.json"
    KillSwitch(path).trip("incident")
    before = path.read_bytes()
    kill = KillSwitch(path)
    target = _damage_lock(kill, kind)
    with pytest.raises(KillSwitchError, match="not cleared: cannot take its lock.*nothing was changed"):
        within(DEADLINE_S, lambda: kill.clear("resume"), fifos=[target])
    assert path.read_bytes() == before and KillSwitch(path).state is KillSwitchState.HALTED


# -- through the CLI -----------------------------------------------------------------------------------------
def test_cli_trip_with_a_damaged_lock_ends_halted_and_exits_1(pipeline_home, capsys):
    kill = KillSwitch(_active(default_path()))
    _damage_lock(kill, "directory")
    assert main(["kill-switch", "trip", "--reason", "halt now", "--by", "ops"]) == 1
    out, err = capsys.readouterr()
    assert "kill switch: HALTED" in out and "without the lock" in err and "Traceback" not in err
    assert KillSwitch(default_path()).status().state is KillSwitchState.HALTED


def test_cli_trip_with_an_unwritable_audit_ends_halted_and_exits_1(pipeline_home, capsys):
    kill = KillSwitch(_active(default_path()))
    kill.audit_path.unlink()
    plant("directory", kill.audit_path)
    assert main(["kill-switch", "trip", "--reason", "halt now"]) == 1
    out, err = capsys.readouterr()
    assert "HALTED" in out and "audit log" in err and "cannot be written" in err
    assert KillSwitch(default_path()).status().state is KillSwitchState.HALTED


@pytest.mark.parametrize("damage", ["audit", "lock"])
def test_cli_clear_that_cannot_be_made_exits_2_with_a_sentence(pipeline_home, capsys, damage):
    KillSwitch(default_path()).trip("incident")
    kill = KillSwitch(default_path())
    if damage == "audit":
        kill.audit_path.unlink()
        plant("directory", kill.audit_path)
    else:
        _damage_lock(kill, "directory")
    assert main(["kill-switch", "clear", "--reason", "resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agent-pipeline kill-switch: error: kill switch not cleared:") and "Traceback" not in err
    assert err.count("\n") == 1
    assert KillSwitch(default_path()).state is KillSwitchState.HALTED


def test_cli_status_and_trip_do_not_hang_on_fifos_in_a_real_process(pipeline_home):
    """``agent-pipeline kill-switch status`` and ``trip`` as a separate process, with FIFOs in place of the state
    file and the lock: both return promptly (a hang fails through the timeout), and the trip ends HALTED."""
    kill = KillSwitch(_active(default_path()))
    plant("fifo", default_path())
    kill.lock_path.unlink()
    plant("fifo", kill.lock_path)
    script = textwrap.dedent("""
        import sys
        from agent_pipeline.cli import main
        print("status-exit", main(["kill-switch", "status"]), flush=True)
        print("trip-exit", main(["kill-switch", "trip", "--reason", "fifo attack", "--by", "ops"]), flush=True)
        print("status-exit", main(["kill-switch", "status"]), flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert "kill switch: HALTED" in lines[0] and "FIFO" in done.stdout
    assert "status-exit 0" in lines and "trip-exit 1" in lines and "without the lock" in done.stderr
    assert lines[-1] == "status-exit 0" and "fifo attack" in done.stdout.split("trip-exit")[1]
    assert KillSwitch(default_path()).status().state is KillSwitchState.HALTED
