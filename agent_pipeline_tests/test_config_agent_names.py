"""A config key or value that names an agent must name a registered one: ``min_runs = { momentun = 6 }`` would
otherwise leave momentum at its default minimum without a word (issue 11, hidden cases)."""

import re
import textwrap

import pytest

from agent_pipeline.config_fields import INT_MAP, NESTED_MAP, NUMBER_MAP, rules
from agent_pipeline.pipeline_settings import AGENT_KEYED, TABLES, Settings
from agent_pipeline.settings import ConfigError


def write(home, text: str) -> None:
    (home / "config.toml").write_text(textwrap.dedent(text))


@pytest.mark.parametrize("key", ["min_runs", "max_runs"])
def test_an_unknown_agent_in_a_per_agent_map_fails_naming_the_entry_and_the_closest_agent(pipeline_home, key):
    write(pipeline_home, f"[allocation]\n{key} = {{ momentum = 3, momentun = 6 }}\n")
    with pytest.raises(ConfigError, match=re.escape(f"[allocation] {key}.momentun: no agent 'momentun' is "
                                                    "registered; did you mean 'momentum'?")) as err:
        Settings.load()
    assert "cross_venue_arb, momentum, regime_watcher" in str(err.value)


def test_without_the_builtins_their_names_are_unknown_and_a_user_agent_is_known(pipeline_home):
    write(pipeline_home, """
        builtin_agents = false
        [allocation]
        min_runs = { llm_news = 2 }
        max_runs = { regime_watcher = 6 }
        [[agents]]
        name = "llm_news"
        ref = "my_pkg.agents:News"
    """)
    with pytest.raises(ConfigError, match=r"\[allocation\] max_runs.regime_watcher: no agent 'regime_watcher' is "
                                          r"registered \(registered: llm_news\)"):
        Settings.load()


def test_a_disabled_agent_is_registered_and_may_be_configured(pipeline_home):
    write(pipeline_home, """
        [allocation]
        min_runs = { llm_news = 2, momentum = 1 }
        [[agents]]
        name = "llm_news"
        ref = "my_pkg.agents:News"
        enabled = false
    """)
    assert Settings.load().allocation.min_runs == {"llm_news": 2, "momentum": 1}


def test_every_map_of_the_settings_says_what_its_keys_name():
    """A new name-keyed map must be declared either agent-keyed (checked at load) or keyed by something else."""
    maps = {(name, key) for name, cls in TABLES.items() for key, (_f, rule) in rules(cls).items()
            if rule.kind in (INT_MAP, NUMBER_MAP, NESTED_MAP)}
    strategy_keyed = {("allocation", "max_runs_per_strategy"), ("allocation", "max_capital_per_strategy"),
                      ("reward", "budgets")}
    assert maps == set(AGENT_KEYED) | strategy_keyed
