"""Hidden cases of issue 9 in the two-person rule (item 8): each a class, each failed before its fix.

- time: an approval issued in the future (beyond a minute of clock skew) does not count yet;
- keys: one key value configured for two approvers makes one person two, so the table is refused (also when
  the shared key equals an approver's key);
- look-alikes: names in letters that render as Latin ones (Cherokee, Lisu, Armenian, Latin small capitals and
  IPA letters, a click letter for "l") are one person with the name they imitate or refused; Katakana that
  render as Han are one person with the Han spelling;
- binding: an approval (and the built-ins' exemption) is bound to the agent's name as well as its code and
  configuration, so another agent with the same code, or a user agent named like a built-in, inherits nothing.
"""

import json
from datetime import UTC, datetime, timedelta

import pytest

from agent_pipeline.agents.config import AgentSpec, builtin_specs
from agent_pipeline.trading import Reason
from agent_pipeline.trading.approvals import approval_key, builtin_fingerprints, issue, verify
from agent_pipeline.trading.identities import IdentityError, same_person_key

KEY = b"k" * 32
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def tok(approver, strategy_hash="h1", key=KEY, ttl=timedelta(days=1), now=NOW):
    return issue(strategy_hash, approver, key=key, ttl=ttl, now=now).token


@pytest.mark.parametrize("ahead", [timedelta(minutes=5), timedelta(days=300), timedelta(days=365 * 50)])
def test_an_approval_issued_in_the_future_does_not_count(ahead):
    result = verify([tok("alice"), tok("bob", now=NOW + ahead)], "h1", key=KEY, now=NOW)
    assert not result.ok and result.code is Reason.APPROVAL_NOT_YET_VALID, result
    assert "bob" in result.message


def test_a_minute_of_clock_skew_is_tolerated():
    assert verify([tok("alice"), tok("bob", now=NOW + timedelta(seconds=30))], "h1", key=KEY, now=NOW).ok


def test_one_key_for_two_approvers_makes_the_table_unusable():
    env = {"AGENT_PIPELINE_APPROVER_KEYS": json.dumps({"alice": "same", "bob": "same", "carol": "c"})}
    keys = approval_key(env)
    assert keys.problem and "same key" in keys.problem
    result = verify([tok("alice", key=b"same"), tok("bob", key=b"same")], "h1", key=keys, now=NOW)
    assert not result.ok and result.code is Reason.APPROVAL_KEY_MISSING


def test_the_shared_key_may_not_be_an_approvers_key():
    env = {"AGENT_PIPELINE_APPROVAL_KEY": "alice-key",
           "AGENT_PIPELINE_APPROVER_KEYS": json.dumps({"alice": "alice-key", "bob": "bob-key"})}
    assert "shared" in approval_key(env).problem


@pytest.mark.parametrize("look_alike", [
    "\u13aa\u13de\u13c6\u13df\u13ac",          # Cherokee ᎪᏞᏆᏟᎬ
    "\ua4ee\ua4e1\ua4f2\ua4da\ua4f0",          # Lisu ꓮꓡꓲꓚꓰ
    "\u1d00lice",                              # Latin small capital A
    "a\u01c0ice",                              # Latin letter dental click for "l"
    "al\u026ace",                              # Latin small capital I
    "alic\u0258",                              # reversed e
])
def test_letters_that_render_as_latin_are_not_a_second_person(look_alike):
    try:
        outcome = same_person_key(look_alike)
    except IdentityError as refused:
        outcome = "refused"
        assert "U+" in str(refused)  # the message names the letter
    assert outcome in ("refused", same_person_key("alice"))


@pytest.mark.parametrize("look_alike", ["\u0585\u057c", "\u0570\u0585"])  # Armenian օռ, հօ
def test_armenian_letters_that_look_latin_are_refused_or_folded(look_alike):
    with pytest.raises(IdentityError):
        same_person_key(look_alike)


def test_katakana_that_renders_as_han_is_one_person_with_it():
    assert same_person_key("\u5c71\u53e3") == same_person_key("\u5c71\u30ed")  # 山口 / 山ロ
    assert same_person_key("\u5de5\u85e4") == same_person_key("\u30a8\u85e4")  # 工藤 / エ藤


def test_names_that_are_really_different_stay_different():
    for a, b in [("alice", "alicia"), ("\u5c71\u7530", "\u5c71\u53e3"), ("\u0434\u043c\u0438\u0442\u0440\u0438\u0439",
                                                                       "alice")]:
        assert same_person_key(a) != same_person_key(b)
    assert same_person_key("\u0141ukasz") == same_person_key("lukasz")  # Ł is an L with a stroke


def test_the_fingerprint_covers_the_agent_name():
    mine = AgentSpec(name="mine", ref="mypkg.agents:Signal", params={"model": "small"})
    theirs = AgentSpec(name="theirs", ref="mypkg.agents:Signal", params={"model": "small"})
    assert mine.fingerprint() != theirs.fingerprint()


def test_a_user_agent_with_a_builtins_code_under_another_name_is_not_exempt():
    builtin = builtin_specs()[0]
    copy = AgentSpec(name="my_copy", ref=builtin.ref)
    assert builtin.fingerprint() in builtin_fingerprints()
    assert copy.fingerprint() not in builtin_fingerprints()
    named_like = AgentSpec(name=builtin.name, ref="mypkg.agents:Evil")
    assert named_like.fingerprint() not in builtin_fingerprints()
