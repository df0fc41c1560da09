"""Hidden case 9 of issue 9: the audit log's tail, however it is padded or torn, and a CLI that says so.

Blank padding after the newest row (any amount) must not hide that row, a torn last row must not let an older
row pass as the latest, a change that does not take effect is an error, and ``kill-switch`` exits non-zero with
a sentence when the audit cannot be read or written.
"""

import pytest

from agent_pipeline.cli import main
from agent_pipeline.trading import KillSwitch, KillSwitchState
from agent_pipeline.trading.kill_switch import KillSwitchError, default_path

PADDING = {"a few newlines": b"\n" * 100, "beyond the small tail": b"\n" * 20_000,
           "beyond the large tail": b"\n" * 300_000, "spaces and tabs": b" \t \r\n" * 100_000}


def tripped(path):
    kill = KillSwitch(path, key=b"")
    kill.trip("t1", by="ops")
    kill.clear("c1", by="ops")
    kill.trip("t2", by="ops")
    return kill


def pad(kill, data):
    with open(kill.audit_path, "ab") as fh:
        fh.write(data)


@pytest.mark.parametrize("name", list(PADDING))
def test_blank_padding_never_hides_the_newest_row(tmp_path, name):
    kill = tripped(tmp_path / "kill_switch.json")
    pad(kill, PADDING[name])
    status = KillSwitch(kill.path, key=b"").status()
    assert (status.state, status.version, status.reason, status.readable) == (KillSwitchState.HALTED, 3, "t2", True)
    cleared = KillSwitch(kill.path, key=b"").clear("reviewed", by="ops")  # and the next change follows it
    assert cleared.state is KillSwitchState.ACTIVE and KillSwitch(kill.path, key=b"").status().readable


@pytest.mark.parametrize("torn", [b'{"at": "2026', b"\x00" * 4096, b'{"version": 9}'])
def test_a_torn_or_foreign_last_row_reads_halted_not_the_older_row(tmp_path, torn):
    kill = tripped(tmp_path / "kill_switch.json")
    kill.clear("c2", by="ops")  # ACTIVE, version 4
    pad(kill, torn)
    status = KillSwitch(kill.path, key=b"").status()
    assert status.state is KillSwitchState.HALTED and not status.readable


def test_a_clear_that_does_not_take_effect_is_an_error(tmp_path):
    kill = tripped(tmp_path / "kill_switch.json")
    pad(kill, b"\n" * (17 * 1024 * 1024))  # more padding than any reader scans: unreadable
    with pytest.raises(KillSwitchError, match="not cleared"):
        KillSwitch(kill.path, key=b"").clear("reviewed", by="ops")


def test_cli_status_exits_non_zero_with_words_when_the_audit_cannot_be_read(pipeline_home, capsys):
    kill = tripped(default_path())
    pad(kill, b'{"torn')
    assert main(["kill-switch", "status"]) == 1
    err = capsys.readouterr().err
    assert "cannot be read" in err and "HALTED" in err


def test_cli_clear_exits_non_zero_with_words_when_it_does_not_take_effect(pipeline_home, capsys):
    kill = tripped(default_path())
    pad(kill, b"\n" * (17 * 1024 * 1024))
    assert main(["kill-switch", "clear", "--reason", "reviewed"]) == 2
    assert "not cleared" in capsys.readouterr().err
