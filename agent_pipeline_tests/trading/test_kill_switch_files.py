"""No kill-switch reader blocks on, or follows, something that is not a regular file; all of them fail closed."""

import pytest

from agent_pipeline.metrics.domain_tables import kill_switch as kill_switch_samples
from agent_pipeline.trading import GuardrailConfig, KillSwitch, KillSwitchState, Reason, TradeGuardrails
from agent_pipeline_tests.hostile_files import KINDS, plant, within

from .conftest import prototype_signal

DEADLINE_S = 5.0
NAMES = {"fifo": "FIFO", "socket": "socket", "directory": "directory", "symlink": "symbolic link",
         "dangling_symlink": "symbolic link", "device": "character device"}


def _valid_copy(tmp_path):
    """An ACTIVE state file elsewhere, valid on its own (what a symlink would point at)."""
    other = tmp_path / "elsewhere" / "kill_switch.json"
    other.parent.mkdir()
    KillSwitch(other).clear("valid elsewhere")
    return other


@pytest.mark.parametrize("kind", KINDS)
def test_a_special_file_in_place_of_the_state_reads_halted_naming_it(tmp_path, kind):
    path = tmp_path / "kill_switch.json"
    KillSwitch(path).clear("start")
    plant(kind, path, _valid_copy(tmp_path))
    status = within(DEADLINE_S, KillSwitch(path).status, fifos=[path])
    assert status.state is KillSwitchState.HALTED and not status.readable
    assert NAMES[kind] in status.reason


@pytest.mark.parametrize("kind", ["fifo", "socket", "directory", "symlink", "device"])
def test_a_special_file_in_place_of_the_audit_log_reads_halted(tmp_path, kind):
    path = tmp_path / "kill_switch.json"
    kill = KillSwitch(path)
    kill.clear("start")
    saved = tmp_path / "saved_audit.jsonl"
    saved.write_bytes(kill.audit_path.read_bytes())
    plant(kind, kill.audit_path, saved)
    status = within(DEADLINE_S, KillSwitch(path).status, fifos=[kill.audit_path])
    assert status.state is KillSwitchState.HALTED and NAMES[kind] in status.reason
    rows = within(DEADLINE_S, KillSwitch(path).audit, fifos=[kill.audit_path])
    assert len(rows) == 1 and "unreadable" in rows[0]["raw"]


@pytest.mark.parametrize("target", ["state", "audit", "lock", "turnstile"])
def test_the_gate_denies_at_once_when_a_fifo_replaces_a_kill_switch_file(tmp_path, target):
    path = tmp_path / "kill_switch.json"
    kill = KillSwitch(path)
    kill.clear("start")
    fifo = {"state": path, "audit": kill.audit_path, "lock": kill.lock_path,
            "turnstile": kill.turnstile_path}[target]
    if fifo.exists():
        fifo.unlink()
    plant("fifo", fifo)
    gate = TradeGuardrails(GuardrailConfig(), KillSwitch(path, lock_timeout_s=1.0))

    def guarded_check():
        with gate.kill.guard() as entry:
            return entry, gate.check(prototype_signal())

    entry, decision = within(DEADLINE_S, guarded_check, fifos=[fifo])
    assert entry.state is KillSwitchState.HALTED and not decision.ok
    assert decision.code in (Reason.KILL_SWITCH_UNREADABLE, Reason.KILL_SWITCH_HALTED)


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink", "dangling_symlink"])
def test_guard_runs_halted_when_the_lock_file_is_damaged(tmp_path, kind):
    path = tmp_path / "kill_switch.json"
    kill = KillSwitch(path)
    kill.clear("start")
    kill.lock_path.unlink()
    plant(kind, kill.lock_path, tmp_path / "kill_switch.json.turnstile")

    def enter():
        with KillSwitch(path).guard() as status:
            return status

    status = within(DEADLINE_S, enter, fifos=[kill.lock_path])
    assert status.state is KillSwitchState.HALTED and "lock" in status.reason


def test_the_metrics_reader_reports_engaged_for_a_fifo_state(tmp_path):
    path = tmp_path / "kill_switch.json"
    KillSwitch(path).clear("start")
    path.unlink()
    plant("fifo", path)
    samples = within(DEADLINE_S, lambda: kill_switch_samples(tmp_path), fifos=[path])
    by_name = {(s.name, s.labels): s.value for s in samples}
    assert by_name[("trading_kill_switch_engaged", ())] == 1.0
    assert by_name[("trading_kill_switch_state", (("state", "HALTED"),))] == 1.0


def test_a_large_state_file_is_not_read_whole(tmp_path):
    path = tmp_path / "kill_switch.json"
    KillSwitch(path).clear("start")
    path.write_bytes(b" " * 10_000_000 + b"{}")
    status = KillSwitch(path).status()
    assert status.state is KillSwitchState.HALTED and "larger than" in status.reason


def test_the_cached_read_costs_no_reparse_and_sees_a_replacement(tmp_path):
    """The gate reads on every order: unchanged files are not re-read, any change is seen on the next read."""
    path = tmp_path / "kill_switch.json"
    KillSwitch(path).clear("start")
    reader = KillSwitch(path)
    first = reader.status()
    assert reader.status() is first  # served from the identity cache
    KillSwitch(path).trip("elsewhere")
    assert reader.status().state is KillSwitchState.HALTED
