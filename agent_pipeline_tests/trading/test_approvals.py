"""Two-person HMAC approvals: every way an approval can be wrong has its own reason code."""

from datetime import UTC, datetime, timedelta

import pytest

from agent_pipeline.agents.registry import AgentSpec
from agent_pipeline.trading import GuardrailConfig, KillSwitch, Reason, TradeGuardrails
from agent_pipeline.trading.approvals import ApprovalError, issue, verify

from .conftest import seed_signal

KEY = b"k" * 32
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def tok(approver, strategy_hash="h1", key=KEY, ttl=timedelta(days=1), now=NOW):
    return issue(strategy_hash, approver, key=key, ttl=ttl, now=now).token


@pytest.mark.parametrize("tokens,code", [
    ([], Reason.APPROVAL_MISSING),
    (None, Reason.APPROVAL_MISSING),
    ([tok("alice")], Reason.APPROVAL_SINGLE_APPROVER),
    ([tok("alice"), tok("alice")], Reason.APPROVAL_SINGLE_APPROVER),
    ([tok("alice"), tok("bob", key=b"other key")], Reason.APPROVAL_FORGED),
    ([tok("alice"), tok("bob")[:-2] + "00"], Reason.APPROVAL_FORGED),
    ([tok("alice"), "garbage"], Reason.APPROVAL_FORGED),
    ([tok("alice"), 42], Reason.APPROVAL_FORGED),
    ([tok("alice"), tok("bob", ttl=timedelta(seconds=1), now=NOW - timedelta(hours=1))], Reason.APPROVAL_EXPIRED),
    ([tok("alice"), tok("bob", strategy_hash="h2")], Reason.APPROVAL_MISMATCH),
    ([tok("alice", "h2"), tok("bob", "h2")], Reason.APPROVAL_MISMATCH),
    ([tok("alice"), tok("bob")], Reason.OK),
    ([tok("alice"), tok("bob"), "garbage"], Reason.OK),
])
def test_verify(tokens, code):
    result = verify(tokens, "h1", key=KEY, now=NOW)
    assert result.code is code and result.ok is (code is Reason.OK)


def test_a_missing_key_cannot_verify_or_sign():
    assert verify([tok("alice"), tok("bob")], "h1", key=None, now=NOW).code is Reason.APPROVAL_KEY_MISSING
    with pytest.raises(ApprovalError, match="AGENT_PIPELINE_APPROVAL_KEY"):
        issue("h1", "alice", key=b"")


def test_a_payload_cannot_be_rebound_to_another_hash():
    import base64
    import json

    body, sig = tok("bob").split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["strategy_hash"] = "h2"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode() + "." + sig
    assert verify([tok("alice", "h2"), forged], "h2", key=KEY, now=NOW).code is Reason.APPROVAL_FORGED


def test_a_changed_configuration_changes_the_hash():
    a = AgentSpec(name="x", ref="pkg.mod:Agent", params={"window": 10})
    b = AgentSpec(name="x", ref="pkg.mod:Agent", params={"window": 11})
    assert a.fingerprint() != b.fingerprint()


def test_the_gate_requires_approvals_once_configured():
    env = {"AGENT_PIPELINE_APPROVAL_KEY": KEY.decode()}
    gate = TradeGuardrails(GuardrailConfig(require_approval=True), KillSwitch(), environ=env)
    assert gate.check(seed_signal()).code is Reason.FIELD_MISSING  # strategy_hash
    now = datetime.now(UTC)
    signed = [tok("alice", now=now), tok("bob", now=now)]
    assert gate.check(seed_signal(strategy_hash="h1", approvals=signed)).ok
    assert gate.check(seed_signal(strategy_hash="h1", approvals="x")).code is Reason.FIELD_INVALID
    assert gate.check(seed_signal(strategy_hash="h1", approvals=signed[:1])).code is Reason.APPROVAL_SINGLE_APPROVER
