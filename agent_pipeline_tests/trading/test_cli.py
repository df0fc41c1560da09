"""``agent-pipeline kill-switch ...`` and ``agent-pipeline approve``."""

import json

import pytest

from agent_pipeline.cli import main
from agent_pipeline.store import has_table
from agent_pipeline.trading import KillSwitch, KillSwitchState
from agent_pipeline.trading.kill_switch import default_path


def test_kill_switch_commands(capsys):
    assert main(["kill-switch", "status"]) == 0
    assert "ACTIVE" in capsys.readouterr().out
    assert main(["kill-switch", "trip", "--reason", "fault storm", "--by", "alice"]) == 0
    assert KillSwitch(default_path()).state is KillSwitchState.HALTED
    with pytest.raises(SystemExit):
        main(["kill-switch", "clear"])  # --reason is required
    assert main(["kill-switch", "clear", "--reason", "  "]) == 2
    assert KillSwitch(default_path()).state is KillSwitchState.HALTED
    capsys.readouterr()
    assert main(["kill-switch", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "HALTED" and status["reason"] == "fault storm" and status["by"] == "alice"
    assert main(["kill-switch", "clear", "--reason", "storm over", "--by", "bob"]) == 0
    assert KillSwitch(default_path()).state is KillSwitchState.ACTIVE
    assert [r["by"] for r in KillSwitch(default_path()).audit()] == ["alice", "bob"]


def test_approve(capsys, monkeypatch, store):
    assert main(["approve", "momentum", "--approver", "alice"]) == 2  # no key in the environment
    monkeypatch.setenv("AGENT_PIPELINE_APPROVAL_KEY", "secret")
    assert main(["approve", "nobody", "--approver", "alice"]) == 2
    capsys.readouterr()
    assert main(["approve", "momentum", "--approver", "alice"]) == 0
    out = json.loads(capsys.readouterr().out)
    from agent_pipeline_tests.location import loaded

    assert out["strategy_hash"] == loaded()[1]["momentum"].spec.fingerprint()
    with store.connect() as conn:
        assert conn.execute("SELECT approver FROM strategy_approvals").fetchall() == [("alice",)]


@pytest.mark.parametrize("days", ["inf", "-inf", "nan", "1e9", "1e400", "0", "-1", "366", "abc", ""])
def test_approve_refuses_a_ttl_outside_its_range_in_one_line(capsys, monkeypatch, store, days):
    monkeypatch.setenv("AGENT_PIPELINE_APPROVAL_KEY", "secret")
    assert main(["approve", "momentum", "--approver", "alice", f"--ttl-days={days}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--ttl-days" in err and "365" in err and "Traceback" not in err
    with store.connect() as conn:
        assert not has_table(conn, "strategy_approvals")  # nothing was signed or stored


def test_approve_refuses_an_unregistered_agent_even_with_a_hash(capsys, monkeypatch):
    monkeypatch.setenv("AGENT_PIPELINE_APPROVAL_KEY", "secret")
    assert main(["approve", "nobody", "--approver", "alice", "--strategy-hash", "ab" * 32]) == 2
    assert "no agent named 'nobody'" in capsys.readouterr().err
    assert main(["approve", "momentum", "--approver", "alice", "--strategy-hash", "not-a-hash"]) == 2
    assert "--strategy-hash" in capsys.readouterr().err


def test_approve_records_the_identity_and_the_os_user(capsys, monkeypatch, store):
    from agent_pipeline.trading.identities import os_user

    monkeypatch.setenv("AGENT_PIPELINE_APPROVAL_KEY", "secret")
    monkeypatch.setenv("USER", "mallory")
    assert main(["approve", "momentum", "--approver", "ALICE"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["identity"] == "alice" and out["os_user"] == os_user() and "mallory" not in out["os_user"]
    assert main(["approve", "momentum", "--approver", "\u0430lice"]) == 2  # a Cyrillic "а"
    assert "mixes scripts" in capsys.readouterr().err
    with store.connect() as conn:
        rows = conn.execute("SELECT approver, identity, os_user FROM strategy_approvals").fetchall()
    assert rows == [("ALICE", "alice", os_user())]
