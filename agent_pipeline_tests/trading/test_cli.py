"""``agent-pipeline kill-switch ...`` and ``agent-pipeline approve``."""

import json

import pytest

from agent_pipeline.cli import main
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
    from agent_pipeline.agents import load_configured_registry

    assert out["strategy_hash"] == load_configured_registry()["momentum"].spec.fingerprint()
    with store.connect() as conn:
        assert conn.execute("SELECT approver FROM strategy_approvals").fetchall() == [("alice",)]
