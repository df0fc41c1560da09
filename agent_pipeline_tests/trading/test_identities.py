"""Canonical identities: what a refused name is told, and which spellings collapse into one person."""

import pytest

from agent_pipeline.trading.identities import IdentityError, canonical_identity, display_name, same_person_key


def test_a_mixed_script_name_is_refused_naming_the_hidden_letter():
    with pytest.raises(IdentityError) as caught:
        canonical_identity("\u0430lice")
    message = str(caught.value)
    assert "mixes scripts" in message and "CYRILLIC" in message and "U+0430" in message


@pytest.mark.parametrize("name", ["", "   ", "\u200b\u200c", "...", 42, None, "a" * 200, "al\x00ice", "ali\nce\x07"])
def test_names_that_cannot_be_an_identity_are_refused(name):
    with pytest.raises(IdentityError):
        canonical_identity(name)


def test_scripts_that_belong_together_are_accepted():
    assert canonical_identity("\u5c71\u7530 \u305f\u308d\u3046") == "\u5c71\u7530 \u305f\u308d\u3046"  # Han + Hiragana
    assert canonical_identity("Kim \ud55c\uc194") == "kim \ud55c\uc194"  # Latin + Hangul


def test_the_recorded_name_keeps_the_claim_and_drops_only_the_invisible():
    assert display_name("  Alice\u200b  Smith ") == "Alice Smith"
    assert canonical_identity("  Alice\u200b  Smith ") == "alice smith"
    assert same_person_key("Alice Smith") == same_person_key("alice.smith") == same_person_key("ALICESMITH")
    assert same_person_key("alice") != same_person_key("alicia")
