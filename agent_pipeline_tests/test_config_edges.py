"""Config values that type-check but cannot work are refused at load, naming the key: a replay file that is not
there (or is a FIFO that would hang every run), a history that starts in the future, a ccxt source with no
exchange or without its extra, a duration or count below zero (issue 11, hidden cases)."""

import importlib.util
import math
import os
import re
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_pipeline.config_fields import INT, NUMBER, rules
from agent_pipeline.pipeline_settings import TABLES, Settings
from agent_pipeline.settings import ConfigError
from agent_pipeline_tests.test_settings import _document, _tables


def write(home, text: str) -> None:
    (home / "config.toml").write_text(textwrap.dedent(text))


def test_a_replay_path_that_does_not_exist_fails_at_load(pipeline_home, tmp_path):
    write(pipeline_home, f'[market]\nsource = "replay"\nreplay_path = "{tmp_path / "nope.csv"}"\n')
    with pytest.raises(ConfigError, match=r"\[market\] replay_path .*nope.csv' does not exist"):
        Settings.load()


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_replay_path_that_is_not_a_regular_file_fails_at_load(pipeline_home, tmp_path, kind):
    target = tmp_path / "quotes.csv"
    target.mkdir() if kind == "directory" else os.mkfifo(target)
    write(pipeline_home, f'[market]\nsource = "replay"\nreplay_path = "{target}"\n')
    with pytest.raises(ConfigError, match=r"\[market\] replay_path .*quotes.csv' is a (directory|FIFO)"):
        Settings.load()


def test_a_replay_path_under_home_is_expanded_and_a_regular_file_loads(pipeline_home, tmp_path, monkeypatch):
    (tmp_path / "quotes.csv").write_text("ts,venue,symbol,bid,ask,bid_size,ask_size\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    write(pipeline_home, '[market]\nsource = "replay"\nreplay_path = "~/quotes.csv"\n')
    assert Settings.load().market.replay_path == "~/quotes.csv"


def test_a_history_start_in_the_future_fails_at_load(pipeline_home):
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    write(pipeline_home, f'[reward.history]\nhistory_start = "{tomorrow}"\n')
    with pytest.raises(ConfigError, match=re.escape(f"[reward.history] history_start {tomorrow} is in the future")):
        Settings.load()
    today = datetime.now(UTC).date().isoformat()
    write(pipeline_home, f'[reward.history]\nhistory_start = "{today}"\n')
    assert Settings.load().reward.history.history_start == today


def test_a_ccxt_source_without_exchanges_fails_at_load(pipeline_home):
    write(pipeline_home, '[market]\nsource = "ccxt"\nexchanges = []\n')
    with pytest.raises(ConfigError, match=r"\[market\] exchanges must name at least one exchange"):
        Settings.load()


@pytest.mark.skipif(importlib.util.find_spec("ccxt") is not None, reason="the ccxt extra is installed here")
def test_a_ccxt_source_without_the_extra_fails_at_load_naming_the_extra(pipeline_home):
    write(pipeline_home, '[market]\nsource = "ccxt"\n')
    with pytest.raises(ConfigError, match=re.escape("[market] source = \"ccxt\" needs the optional extra: "
                                                    "pip install 'agent_pipeline[ccxt]'")):
        Settings.load()


# A key whose name says it is a duration or a count.
_DURATION_OR_COUNT = re.compile(r"(_sec|_s|_seconds|_minutes|_hours|_days|_runs|_samples|_ticks|_window|_n_runs|_per_tick|"
                                r"concurren\w*|^seed)$|^(min|max)_(events|errors|orders)|timeout")


def _durations_and_counts():
    for path, cls in _tables():
        for key, (_f, rule) in rules(cls).items():
            if rule.kind in (INT, NUMBER) and _DURATION_OR_COUNT.search(key):
                yield pytest.param(path, key, id=f"{'.'.join(map(str, path))}.{key}")


@pytest.mark.parametrize("path, key", list(_durations_and_counts()))
def test_no_duration_or_count_may_be_negative_infinite_or_nan(path, key):
    for bad in (-1, -0.5, math.inf, -math.inf, math.nan):
        with pytest.raises(ConfigError, match=rf"\b{key}\b"):
            Settings.from_document(_document(path, {key: bad}))


def test_the_class_covers_every_table():
    assert {p[0] for p, _k in (c.values for c in _durations_and_counts())} >= set(TABLES) - {"market", "store"} | {"agents"}  # store: a URL only


# -- any document: settings, or a ConfigError that names the problem; never another exception -------------------

_KEYS_OF = {name: list(rules(cls)) for name, cls in TABLES.items()}
_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64), st.floats(allow_nan=True), st.text(max_size=8),
              st.dates().map(lambda d: d), st.sampled_from(["momentum", "replay", "ccxt", "2099-01-01", "/dev/null",
                                                            "glr_thompson", "PRICE_COLLAR"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)


@st.composite
def documents(draw) -> dict:
    doc: dict = {}
    for name in draw(st.lists(st.sampled_from([*TABLES, "builtin_agents", "agents", "guardrail"]), max_size=4)):
        if name == "builtin_agents":
            doc[name] = draw(_VALUES)
        elif name == "agents":
            doc[name] = draw(st.lists(st.dictionaries(st.sampled_from(["name", "ref", "kind", "strategy", "params",
                                                                       "timeout_sec", "enabled", "nme"]), _VALUES,
                                                      max_size=5), max_size=2))
        elif name in TABLES:
            keys = st.sampled_from(_KEYS_OF[name]) | st.text(max_size=6)
            doc[name] = draw(st.dictionaries(keys, _VALUES, max_size=4))
        else:
            doc[name] = draw(_VALUES)
    return doc


@settings(max_examples=300, deadline=None)
@given(doc=documents())
def test_any_document_loads_or_fails_with_a_config_error_naming_a_table_or_key(doc):
    try:
        Settings.from_document(doc)
    except ConfigError as exc:
        message = str(exc)
        assert message and "Traceback" not in message
        assert any(part in message for part in ("config.toml", "agent", "[", "builtin_agents")), message


def test_a_history_start_before_the_oldest_importable_event_fails_at_load(pipeline_home):
    """Daily partitions from 1900 would be 45,000 partitions of nothing: no event before 1990 can be stored."""
    write(pipeline_home, '[reward.history]\nhistory_start = "1900-01-01"\n')
    with pytest.raises(ConfigError, match=re.escape("[reward.history] history_start 1900-01-01 is before 1990-01-01")):
        Settings.load()
    write(pipeline_home, '[reward.history]\nhistory_start = "1990-01-01"\n')
    assert Settings.load().reward.history.history_start == "1990-01-01"
