"""The registry loads built-ins and the user's own agents by module path, and rejects bad entries at load."""

import textwrap

import pytest

from agent_pipeline.agents import AgentRegistryError, load_registry
from agent_pipeline_tests.location import loaded


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    pkg = tmp_path / "user_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "agents.py").write_text(textwrap.dedent("""
        from agent_pipeline.agents import AgentResult

        class Headlines:
            name = "headlines"
            kind = "signal"
            strategy = "news"

            def __init__(self, threshold=0.5):
                self.threshold = threshold

            def run(self, ctx):
                return AgentResult([{"profit_pct": self.threshold}], cost_usd=0.002)

        def plain(ctx):
            return [{"profit_pct": 0.1}]

        NOT_CALLABLE = 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "user_pkg.agents"


def test_builtins_are_registered_with_their_kinds():
    registry = load_registry()
    assert {n: a.kind for n, a in registry.items()} == {
        "cross_venue_arb": "execution-sensitive", "momentum": "signal", "regime_watcher": "watcher"}


def test_user_class_is_built_with_params(user_module):
    registry = load_registry([{"name": "news", "ref": f"{user_module}:Headlines", "params": {"threshold": 0.9}}],
                             include_builtins=False)
    loaded = registry["news"]
    assert loaded.name == "news" and loaded.kind == "signal" and loaded.strategy == "news"
    assert loaded.agent.threshold == 0.9


def test_user_function_becomes_an_agent(user_module):
    registry = load_registry([{"name": "plain", "ref": f"{user_module}:plain", "kind": "watcher",
                               "strategy": "obs"}], include_builtins=False)
    assert registry["plain"].kind == "watcher" and registry["plain"].strategy == "obs"
    assert registry["plain"].agent.run(None) == [{"profit_pct": 0.1}]


@pytest.mark.parametrize("entry, message", [
    ({"name": "x", "ref": "no_such_module_zz:Agent"}, "cannot import module 'no_such_module_zz'"),
    ({"name": "x", "ref": "{mod}:Missing"}, "has no attribute 'Missing'"),
    ({"name": "x", "ref": "{mod}:NOT_CALLABLE"}, "not callable"),
    ({"name": "x", "ref": "{mod}"}, "must look like"),
    ({"name": "x", "ref": "{mod}:Headlines", "kind": "trader"}, "kind 'trader'"),
    ({"name": "x", "ref": "{mod}:Headlines", "params": {"nope": 1}}, "rejected params"),
    ({"name": "x", "ref": "{mod}:Headlines", "colour": "red"}, "unknown key"),
    ({"name": "x", "ref": "{mod}:Headlines", "timeout_sec": 0}, "timeout_sec"),
    ({"name": "Bad Name", "ref": "{mod}:Headlines"}, "must be lowercase"),
    ({"ref": "{mod}:Headlines"}, "'name' is required"),
])
def test_bad_entries_fail_at_load_naming_the_entry(user_module, entry, message):
    entry = {k: v.format(mod=user_module) if isinstance(v, str) else v for k, v in entry.items()}
    with pytest.raises(AgentRegistryError, match=message):
        load_registry([entry], include_builtins=False)


def test_duplicate_names_are_rejected(user_module):
    with pytest.raises(AgentRegistryError, match="'momentum' is registered twice"):
        load_registry([{"name": "momentum", "ref": f"{user_module}:plain"}])


def test_registry_from_config_file(pipeline_home, user_module):
    (pipeline_home / "config.toml").write_text(textwrap.dedent(f"""
        builtin_agents = false
        [[agents]]
        name = "news"
        ref = "{user_module}:Headlines"
        timeout_sec = 5
    """))
    _settings, registry = loaded()
    assert list(registry) == ["news"] and registry["news"].spec.timeout_sec == 5


def test_fingerprint_changes_with_configuration(user_module):
    a = load_registry([{"name": "n", "ref": f"{user_module}:Headlines", "params": {"threshold": 1}}],
                      include_builtins=False)["n"].spec
    b = load_registry([{"name": "n", "ref": f"{user_module}:Headlines", "params": {"threshold": 2}}],
                      include_builtins=False)["n"].spec
    assert a.fingerprint() != b.fingerprint() and len(a.fingerprint()) == 64
