"""Two-person HMAC approvals: every way an approval can be wrong has its own reason code."""

from datetime import UTC, datetime, timedelta

import pytest

from agent_pipeline.agents.registry import AgentSpec
from agent_pipeline.trading import GuardrailConfig, KillSwitch, Reason, TradeGuardrails
from agent_pipeline.trading.approvals import ApprovalError, issue, verify

from .conftest import prototype_signal

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
    assert gate.check(prototype_signal()).code is Reason.FIELD_MISSING  # strategy_hash
    now = datetime.now(UTC)
    signed = [tok("alice", now=now), tok("bob", now=now)]
    assert gate.check(prototype_signal(strategy_hash="h1", approvals=signed)).ok
    assert gate.check(prototype_signal(strategy_hash="h1", approvals="x")).code is Reason.FIELD_INVALID
    assert (gate.check(prototype_signal(strategy_hash="h1", approvals=signed[:1])).code
            is Reason.APPROVAL_SINGLE_APPROVER)


# -- people, not spellings --------------------------------------------------------------------------------------
def _hand_signed(payload, key=KEY):
    """A token made without ``issue`` (by someone holding the key), to check what ``verify`` itself accepts."""
    import base64
    import hashlib
    import hmac
    import json

    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return body + "." + hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def _payload(approver, **overrides):
    stamp = NOW.timestamp()
    return {"v": 1, "strategy_hash": "h1", "agent": "", "approver": approver, "issued_at": stamp,
            "expires_at": stamp + 86_400, "nonce": "n", **overrides}


SAME_PERSON = ["Alice", "ALICE", "aLiCe", "  alice ", "ali\u200bce", "\u200balice\u200d", "alice\u00ad", "ali\u2060ce",
               "\uff41\uff4c\uff49\uff43\uff45",  # fullwidth
               "\uff21\uff2c\uff29\uff23\uff25",  # fullwidth capitals
               "\U0001d41a\U0001d425\U0001d422\U0001d41c\U0001d41e",  # mathematical bold
               "a\u0301lice", "ali\u0336ce", "alice\u3164", "\u24d0lice"]


@pytest.mark.parametrize("spelling", SAME_PERSON)
def test_one_person_spelled_two_ways_is_one_approver(spelling):
    """Case, zero-width and format characters, fullwidth/mathematical letters, accents: still one person."""
    result = verify([tok("alice"), _hand_signed(_payload(spelling))], "h1", key=KEY, now=NOW)
    assert result.code is Reason.APPROVAL_SINGLE_APPROVER and result.approvers == ("alice",)
    if spelling.strip():
        result = verify([tok("alice"), tok(spelling)], "h1", key=KEY, now=NOW)
        assert result.code is Reason.APPROVAL_SINGLE_APPROVER


def test_an_all_cyrillic_look_alike_is_the_same_person():
    for latin, cyrillic in (("ace", "\u0410\u0421\u0415"), ("bob", "\u0432\u043e\u0432")):
        result = verify([tok(latin), tok(cyrillic)], "h1", key=KEY, now=NOW)
        assert result.code is Reason.APPROVAL_SINGLE_APPROVER


@pytest.mark.parametrize("name", ["\u0430lice", "alic\u0435", "\u0391LICE", "b\u03bfb", "ali\u2800ce", "al\U0001f600"])
def test_names_that_mix_scripts_or_hide_symbols_are_refused(name):
    with pytest.raises(ApprovalError, match="mixes scripts|contains"):
        issue("h1", name, key=KEY, now=NOW)
    result = verify([tok("alice"), _hand_signed(_payload(name))], "h1", key=KEY, now=NOW)
    assert not result.ok and result.code is Reason.APPROVAL_APPROVER_INVALID


def test_distinct_people_in_other_scripts_still_count():
    for a, b in (("alice", "bob"), ("\u674e\u96f7", "\u5c71\u7530 \u305f\u308d\u3046"),
                 ("\u0410\u043d\u043d\u0430", "\u0411\u043e\u0440\u0438\u0441"), ("o'brien", "o'neil")):
        assert verify([tok(a), tok(b)], "h1", key=KEY, now=NOW).ok


def test_the_os_user_comes_from_the_process_not_the_environment(monkeypatch):
    import pwd

    from agent_pipeline.trading.approvals import decode

    monkeypatch.setenv("USER", "mallory")
    monkeypatch.setenv("LOGNAME", "mallory")
    approval = issue("h1", "Alice", key=KEY, now=NOW)
    payload = decode(approval.token)
    account = pwd.getpwuid(__import__("os").geteuid()).pw_name
    assert payload["os_user"] == approval.os_user and account in approval.os_user and "mallory" not in approval.os_user
    assert payload["approver"] == "Alice" and payload["identity"] == approval.identity == "alice"


def test_an_approval_claiming_a_lifetime_beyond_the_maximum_does_not_count():
    stamp = NOW.timestamp()
    forever = _hand_signed(_payload("bob", expires_at=stamp + 10 ** 12))
    assert verify([tok("alice"), forever], "h1", key=KEY, now=NOW).code is Reason.APPROVAL_EXPIRED
    with pytest.raises(ApprovalError, match="at most 365 days"):
        issue("h1", "bob", key=KEY, ttl=timedelta(days=366))


# -- one key per approver ----------------------------------------------------------------------------------------
ROSTER = {"AGENT_PIPELINE_APPROVER_KEYS": '{"alice": "alice-key", "Bob": "bob-key"}',
          "AGENT_PIPELINE_APPROVAL_KEY": KEY.decode()}


def test_with_per_approver_keys_each_name_needs_its_own_key():
    from agent_pipeline.trading.approvals import approval_key

    keys = approval_key(ROSTER)
    alice, bob = tok("alice", key=b"alice-key"), tok("bob", key=b"bob-key")
    assert verify([alice, bob], "h1", key=keys, now=NOW).ok
    assert verify([tok("ALICE", key=b"alice-key"), bob], "h1", key=keys, now=NOW).ok  # same person, own key
    for impostor, code in ((tok("bob"), Reason.APPROVAL_FORGED),                       # the shared key
                           (tok("bob", key=b"alice-key"), Reason.APPROVAL_FORGED),     # alice signing as bob
                           (tok("carol", key=b"carol-key"), Reason.APPROVAL_APPROVER_INVALID),  # not on the roster
                           (tok("carol"), Reason.APPROVAL_APPROVER_INVALID)):
        result = verify([alice, impostor], "h1", key=keys, now=NOW)
        assert result.code is code and result.approvers == ("alice",)


def test_the_gate_applies_per_approver_keys_from_its_environment():
    gate = TradeGuardrails(GuardrailConfig(require_approval=True), KillSwitch(), environ=ROSTER)
    now = datetime.now(UTC)
    own = [tok("alice", key=b"alice-key", now=now), tok("bob", key=b"bob-key", now=now)]
    assert gate.check(prototype_signal(strategy_hash="h1", approvals=own)).ok
    shared = [tok("alice", now=now), tok("bob", now=now)]
    assert gate.check(prototype_signal(strategy_hash="h1", approvals=shared)).code is Reason.APPROVAL_FORGED


@pytest.mark.parametrize("roster", ["not json", "[]", "{}", '{"alice": ""}', '{"alice": 5}',
                                    '{"alice": "k1", "ALICE": "k2"}', '{"\u0430lice": "k"}'])
def test_a_broken_roster_verifies_nothing_and_says_why(roster):
    from agent_pipeline.trading.approvals import approval_key

    keys = approval_key({"AGENT_PIPELINE_APPROVER_KEYS": roster, "AGENT_PIPELINE_APPROVAL_KEY": KEY.decode()})
    result = verify([tok("alice"), tok("bob")], "h1", key=keys, now=NOW)
    assert result.code is Reason.APPROVAL_KEY_MISSING and "AGENT_PIPELINE_APPROVER_KEYS" in result.message


def test_signing_uses_the_approvers_own_key_first(monkeypatch):
    monkeypatch.setenv("AGENT_PIPELINE_APPROVAL_KEY", KEY.decode())
    monkeypatch.setenv("AGENT_PIPELINE_APPROVER_KEY", "bob-key")
    from agent_pipeline.trading.approvals import approval_key

    bob = issue("h1", "bob", now=NOW).token
    assert verify([tok("alice", key=b"alice-key"), bob], "h1", key=approval_key(ROSTER), now=NOW).ok


@pytest.mark.parametrize("spelling", ["al1ce", "aIice", "a.lice", "a lice", "ali-ce", "alice_", "ALI CE"])
def test_latin_look_alikes_and_separators_do_not_make_a_second_person(spelling):
    result = verify([tok("alice"), tok(spelling)], "h1", key=KEY, now=NOW)
    assert result.code is Reason.APPROVAL_SINGLE_APPROVER and len(result.approvers) == 1


def test_a_look_alike_of_a_rostered_name_still_needs_that_persons_key():
    from agent_pipeline.trading.approvals import approval_key

    keys = approval_key(ROSTER)
    alice = tok("alice", key=b"alice-key")
    assert verify([alice, tok("al1ce", key=b"bob-key")], "h1", key=keys, now=NOW).code is Reason.APPROVAL_FORGED
    assert verify([alice, tok("b0b", key=b"bob-key")], "h1", key=keys, now=NOW).ok  # "b0b" looks like bob: his key
