"""Configuration is read once, at the edge, and checked at load (issue 11 "Config and agents", issue 10 item 1).

Every case is a class: the bad values are derived from each key's own declaration, for every key of every table,
so a key added later is covered too.
"""

import ast
import dataclasses
import json
import math
import re
import runpy
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from agent_pipeline import config_fields as kinds
from agent_pipeline.agents.config import AgentSpec
from agent_pipeline.allocation import Allocation
from agent_pipeline.allocation.decision import period_start_for
from agent_pipeline.allocation.tables import ALLOCATION, write_decision
from agent_pipeline.cli import main
from agent_pipeline.config_fields import rules
from agent_pipeline.pipeline_settings import TABLES, TOP_LEVEL_KEYS, Settings
from agent_pipeline.settings import ConfigError
from agent_pipeline.trading import GuardrailConfig
from agent_pipeline.trading.config import SAFE_DEFAULTS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "agent_pipeline"
DOMAINS = ("agents", "allocation", "market", "metrics", "reward", "store", "trading")


def write(home: Path, text: str) -> None:
    (home / "config.toml").write_text(textwrap.dedent(text))


# -- unknown keys name the closest valid one -------------------------------------------------------------------


def _misspellings(key: str) -> list[str]:
    """A dropped last letter, a dropped middle letter, a doubled letter, two letters swapped."""
    mid = len(key) // 2
    return sorted({key[:-1], key[:mid] + key[mid + 1:], key[:mid] + key[mid] + key[mid:],
                   key[:mid - 1] + key[mid] + key[mid - 1] + key[mid + 1:]} - {key})


@pytest.mark.parametrize("typo, key", [("guardrail", "guardrails"), ("builtin_agent", "builtin_agents"),
                                       ("agent", "agents")])
def test_the_issues_misspelt_top_level_tables_fail_naming_the_valid_one(pipeline_home, typo, key):
    body = {"guardrail": "[guardrail]\nmax_daily_loss_usd = 50\n", "builtin_agent": "builtin_agent = false\n",
            "agent": '[[agent]]\nname = "x"\nref = "m:f"\n'}[typo]
    write(pipeline_home, body)
    with pytest.raises(ConfigError, match=rf"config.toml: unknown top-level key '{typo}'; did you mean '{key}'\?"):
        Settings.load()


@pytest.mark.parametrize("key", TOP_LEVEL_KEYS)
def test_every_misspelt_top_level_key_names_the_closest_valid_one(key):
    for typo in _misspellings(key):
        with pytest.raises(ConfigError, match=rf"unknown top-level key '{typo}'; did you mean '{key}'\?"):
            Settings.from_document({typo: {}})


def _tables():
    """(document path, class) of every table, nested ones and the [[agents]] entry included."""
    out = []
    for name, cls in TABLES.items():
        out.append(((name,), cls))
        for key, (_f, rule) in rules(cls).items():
            if rule.kind == kinds.NESTED:
                out.append(((name, key), rule.table))
    out.append((("agents", 0), AgentSpec))
    return out


def _document(path: tuple, values: dict) -> dict:
    """A config.toml document with ``values`` at ``path`` (an agent entry gets the keys it needs)."""
    if path == ("agents", 0):
        return {"agents": [{"name": "llm_news", "ref": "my_pkg.agents:News", **values}]}
    doc: dict = {}
    node = doc
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = values
    return doc


def _where(path: tuple) -> str:
    return "agents[0] (llm_news):" if path == ("agents", 0) else f"[{'.'.join(path)}]"


@pytest.mark.parametrize("path, cls", _tables(), ids=[".".join(map(str, path)) for path, _cls in _tables()])
def test_every_misspelt_key_of_every_table_names_the_closest_valid_one(path, cls):
    for key in rules(cls):
        for typo in _misspellings(key):
            if typo in rules(cls):
                continue
            with pytest.raises(ConfigError, match=re.escape(_where(path)) + rf" unknown key '{typo}'"
                               rf"; did you mean '{key}'\?"):
                Settings.from_document(_document(path, {typo: 1}))


# -- types and ranges are checked at load, naming the table or entry and the key ---------------------------------


def _bad_values(rule) -> list:
    """Values the rule must refuse: wrong types for its kind, then values just outside its bounds."""
    kind = rule.kind
    bad = {kinds.BOOL: ["false", "true", 1, 0], kinds.INT: ["7", 1.5, True],
           kinds.NUMBER: ["1", True, math.nan, math.inf], kinds.TEXT: [5, True, ["x"]], kinds.TEXTS: ["x", [1]],
           kinds.DATE: ["2024-13-01", "20240101", 5], kinds.URL: ["ftp://gw", "gw:9091", 5],
           kinds.TABLE: [[1], "x"], kinds.INT_MAP: [{"a": "1"}, {"a": 1.5}, [1]],
           kinds.NUMBER_MAP: [{"a": "1"}, {"a": math.nan}, [1]], kinds.NESTED: [5, "x"],
           kinds.NESTED_MAP: [{"a": 5}, [1]]}[kind]
    if kind == kinds.NUMBER and rule.convert is None:
        bad.append(-math.inf)
    if kind in (kinds.INT, kinds.NUMBER, kinds.INT_MAP, kinds.NUMBER_MAP):
        step = 1 if kind in (kinds.INT, kinds.INT_MAP) else 1e-9
        outside = [b for b in (rule.gt, rule.ge - step if rule.ge is not None else None, rule.lt,
                               rule.le + max(step, abs(rule.le) * 1e-9) if rule.le is not None else None)
                   if b is not None]
        bad += [{"a": b} for b in outside] if kind in (kinds.INT_MAP, kinds.NUMBER_MAP) else outside
    if rule.choices is not None:
        bad.append(["NOT_A_CHOICE"] if kind == kinds.TEXTS else "not-a-choice")
    if rule.pattern is not None:
        bad.append(["has space"] if kind == kinds.TEXTS else "Has Space!")
    if rule.min_items and kind == kinds.TEXTS:
        bad.append([])
    return bad


def _cases():
    for path, cls in _tables():
        for key, (_f, rule) in rules(cls).items():
            for value in _bad_values(rule):
                yield pytest.param(path, key, value, id=f"{'.'.join(map(str, path))}.{key}={value!r}")


@pytest.mark.parametrize("path, key, value", list(_cases()))
def test_every_key_of_every_table_refuses_wrong_types_and_ranges_naming_table_and_key(path, key, value):
    with pytest.raises(ConfigError) as err:
        Settings.from_document(_document(path, {key: value}))
    message = str(err.value)
    where = _where(path)
    if path == ("agents", 0) and key == "name":
        where = "agents[0]"  # a bad name: the entry is named by its position
    # "[reward] fill_prob ...", "[reward.budgets.a] ...", "agents[0] (llm_news): timeout_sec ..."
    assert message.startswith(where.rstrip("]:")) and re.search(rf"\b{key}\b", message), message


def test_the_issues_bad_agent_entries_fail_at_load_naming_the_entry(pipeline_home):
    for line, message in [('enabled = "false"', "agents[1] (llm_news): enabled must be true or false, got 'false'"),
                          ("timeout_sec = 1e12", "agents[1] (llm_news): timeout_sec must be a number in (0, 3600]"),
                          ("strategy = 5", "agents[1] (llm_news): strategy must be a string, got 5"),
                          ('kind = "trader"', "agents[1] (llm_news): kind 'trader' is not one of"),
                          ('params = "model=small"', "agents[1] (llm_news): params must be a table")]:
        write(pipeline_home, f"""
            [[agents]]
            name = "fine"
            ref = "my_pkg.agents:Fine"
            [[agents]]
            name = "llm_news"
            ref = "my_pkg.agents:News"
            {line}
        """)
        with pytest.raises(ConfigError, match=re.escape(message)):
            Settings.load()


def test_a_number_too_large_for_a_float_and_a_table_where_a_value_is_due_are_refused(pipeline_home):
    write(pipeline_home, "[market]\nseed = 7\nfault_rate = 1e400\n")  # TOML reads inf
    with pytest.raises(ConfigError, match=r"\[market\] fault_rate must be a number in \[0, 1\], got inf"):
        Settings.load()
    write(pipeline_home, "[guardrails]\nmax_daily_loss_usd = { usd = 500 }\n")
    with pytest.raises(ConfigError, match=r"\[guardrails\] max_daily_loss_usd must be a number > 0"):
        Settings.load()
    write(pipeline_home, "market = 5\n")
    with pytest.raises(ConfigError, match=r"\[market\] must be a table"):
        Settings.load()
    write(pipeline_home, '[agents]\nname = "x"\n')
    with pytest.raises(ConfigError, match=r"agents must be an array of tables \(\[\[agents\]\]\)"):
        Settings.load()


def test_a_bad_gateway_url_in_the_environment_is_named_as_such(pipeline_home, monkeypatch):
    monkeypatch.setenv("AGENT_PIPELINE_PUSHGATEWAY_URL", "gw:9091")
    with pytest.raises(ConfigError, match=r"\$AGENT_PIPELINE_PUSHGATEWAY_URL \(\[metrics\]\) gateway_url"):
        Settings.load()


def test_a_valid_file_loads_with_the_pipelines_defaults_in_one_place(pipeline_home, monkeypatch):
    monkeypatch.setenv("AGENT_PIPELINE_PUSHGATEWAY_URL", "http://gw.example:9091")
    write(pipeline_home, """
        builtin_agents = false
        [market]
        symbols = ["BTC-USD"]
        [reward.history]
        history_start = 2023-06-01
        [guardrails]
        max_orders_per_run = 30
        [[agents]]
        name = "llm_news"
        ref = "my_pkg.agents:News"
        timeout_sec = 20
    """)
    settings = Settings.load()
    assert settings.market.symbols == ("BTC-USD",) and settings.reward.history.history_start == "2023-06-01"
    assert settings.guardrails.require_approval is True  # on in the pipeline ...
    assert GuardrailConfig().require_approval is False  # ... off in the bare code default (the prototype's)
    assert settings.guardrails.max_orders_per_run == 30  # loosened by the user
    assert all(getattr(settings.guardrails, k) == v for k, v in SAFE_DEFAULTS.items() if k != "max_orders_per_run")
    assert settings.metrics.gateway_url == "http://gw.example:9091"
    assert [s.name for s in settings.agents.specs()] == ["llm_news"] and settings.home == pipeline_home
    assert settings.store_path.parent == settings.kill_switch_path.parent == pipeline_home


# -- the registry: listing never runs user code; building happens once per code-location load ----------------------


@pytest.fixture
def hostile_agents(tmp_path, monkeypatch, pipeline_home):
    """A registered module whose import, and a class whose construction, each leave a marker file; and the
    issue's ref to subprocess.Popen that would run a command."""
    (tmp_path / "hostile_agents.py").write_text(textwrap.dedent(f"""
        from pathlib import Path
        Path({str(tmp_path / "imported")!r}).touch()

        class Agent:
            name, kind, strategy = "noisy", "signal", "noisy"

            def __init__(self, **params):
                with open({str(tmp_path / "constructed")!r}, "a") as out:
                    out.write("x")

            def run(self, ctx):
                return []
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    write(pipeline_home, f"""
        [[agents]]
        name = "noisy"
        ref = "hostile_agents:Agent"
        kind = "signal"
        strategy = "noisy"
        timeout_sec = 12.5
        [[agents]]
        name = "popen"
        ref = "subprocess:Popen"
        enabled = false
        params = {{ args = ["touch", "{tmp_path / 'ran'}"] }}
    """)
    sys.modules.pop("hostile_agents", None)
    return tmp_path


def test_agents_list_reads_the_specs_and_never_imports_or_builds_user_code(hostile_agents, capsys):
    assert main(["agents", "list"]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == ["name", "kind", "strategy", "enabled", "timeout_sec", "ref"]
    rows = {row[0]: row for row in lines[1:]}
    assert rows["noisy"] == ["noisy", "signal", "noisy", "yes", "12.5", "hostile_agents:Agent"]
    assert rows["popen"] == ["popen", "-", "-", "no", "30", "subprocess:Popen"]
    assert rows["momentum"][:4] == ["momentum", "signal", "momentum", "yes"]  # a built-in's own kind and strategy
    assert rows["regime_watcher"][1:3] == ["watcher", "macro_regime"]
    assert not (hostile_agents / "imported").exists() and "hostile_agents" not in sys.modules
    assert not (hostile_agents / "constructed").exists() and not (hostile_agents / "ran").exists()


def test_approving_reads_the_fingerprint_from_the_spec_without_importing(hostile_agents, capsys, monkeypatch):
    monkeypatch.setenv("AGENT_PIPELINE_APPROVAL_KEY", "secret")
    assert main(["approve", "noisy", "--approver", "alice"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["strategy_hash"] == Settings.load().agents.enabled()["noisy"].fingerprint()
    assert not (hostile_agents / "imported").exists() and "hostile_agents" not in sys.modules


RUN_MODULE = pytest.mark.filterwarnings("ignore:'agent_pipeline.definitions' found in sys.modules:RuntimeWarning")


@RUN_MODULE
def test_the_code_location_builds_each_registered_agent_once_and_no_disabled_one(hostile_agents):
    defs = runpy.run_module("agent_pipeline.definitions")["defs"]  # what `dagster dev` does: run the module
    assert (hostile_agents / "constructed").read_text() == "x"  # once, not once per domain or per run
    assert not (hostile_agents / "ran").exists()  # disabled: never built
    names = {j.name for j in defs.get_repository_def().get_all_jobs()}
    assert "agent__noisy" in names and "agent__popen" not in names


# -- one settings object: what the code location loaded is what runs --------------------------------------------


def _decide(store, quotas: dict[str, int], period: datetime):
    with store.connect() as conn:
        ALLOCATION.ensure(store, conn)
        alloc = Allocation(quotas=quotas, scores=dict.fromkeys(quotas, 0.0), policy="test")
        write_decision(conn, period, period, alloc, {a: ("signal", a) for a in quotas}, {"seed": None})


def test_the_allocation_cron_and_the_scheduler_sensors_use_the_same_period(pipeline_home, store, monkeypatch):
    from agent_pipeline.definitions import build_location
    from agent_pipeline.defs.allocation import scheduler

    write(pipeline_home, "[allocation]\nperiod_minutes = 30\n")
    defs = build_location(Settings.load())
    repo = defs.get_repository_def()
    quotas = defs.resolve_assets_def("allocator_quotas")
    assert "*/30 * * * *" in quotas.automation_conditions_by_key[quotas.key].get_label()
    write(pipeline_home, "[allocation]\nperiod_minutes = 60\n")  # an edit after load changes neither
    period = period_start_for(datetime.now(UTC), 30)
    _decide(store, {"momentum": 2}, period)
    monkeypatch.setattr(scheduler, "_now", lambda: period + timedelta(minutes=16))
    sensor = repo.get_sensor_def("agent_tick_sensor")
    result = sensor(dg.build_sensor_context(resources=defs.resources))
    # a 30-minute period: both slots (minute 0 and 15) are due at minute 16, under the 30-minute period's key
    (request,) = result.run_requests
    assert request.tags["allocation/period"] == period.isoformat()
    assert len(request.run_config["ops"]["plan_tick"]["config"]["slots"]) == 2
    quotas = defs.resolve_assets_def("allocator_quotas")
    assert "*/30 * * * *" in quotas.automation_conditions_by_key[quotas.key].get_label()


def test_an_agent_run_prices_with_the_settings_the_location_loaded(pipeline_home, store):
    from agent_pipeline.definitions import build_location
    from agent_pipeline.store import read_events

    write(pipeline_home, "[market]\nfault_rate = 0.0\n[reward]\nfill_prob = 0.5\n")
    defs = build_location(Settings.load())
    write(pipeline_home, "[reward]\nfill_prob = 0.9\n")  # read nowhere after load
    job = defs.get_job_def("agent__cross_venue_arb")
    assert job.execute_in_process(raise_on_error=False).output_for_node("run_cross_venue_arb")
    (event,) = read_events(store).itertuples()
    from agent_pipeline.reward import RewardConfig, score_output

    assert event.reward == score_output("cross_venue_arb", "cross_venue_arb", json.loads(event.output),
                                        dataclasses.replace(RewardConfig(), fill_prob=0.5),
                                        cost_usd=event.cost_usd)[0]


@RUN_MODULE
def test_a_bad_config_toml_fails_the_code_location_with_the_key_named(pipeline_home):
    write(pipeline_home, "[guardrails]\nmax_daily_loss_usd = 0\n")
    with pytest.raises(ConfigError, match=re.escape("[guardrails] max_daily_loss_usd must be a number > 0, got 0")):
        runpy.run_module("agent_pipeline.definitions")


# -- domain code takes config as arguments ---------------------------------------------------------------------


def _domain_modules():
    for domain in DOMAINS:
        yield from sorted((PACKAGE / domain).rglob("*.py"))


LOADERS = {"load_config", "load_configured_registry", "config_section"}


def test_domain_packages_never_import_the_settings_aggregate_or_call_a_loader():
    offenders = []
    for path in _domain_modules():
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "agent_pipeline.pipeline_settings":
                offenders.append(f"{where}: imports agent_pipeline.pipeline_settings")
            if isinstance(node, ast.Import) and any(a.name == "agent_pipeline.pipeline_settings" for a in node.names):
                offenders.append(f"{where}: imports agent_pipeline.pipeline_settings")
            if isinstance(node, ast.ImportFrom) and node.module == "agent_pipeline.settings":
                offenders += [f"{where}: imports {a.name}" for a in node.names if a.name in LOADERS]
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id in LOADERS:
                    offenders.append(f"{where}:{node.lineno}: calls {func.id}")
                if isinstance(func, ast.Attribute) and func.attr == "load" and isinstance(func.value, ast.Name) \
                        and func.value.id.endswith(("Config", "Settings")):
                    offenders.append(f"{where}:{node.lineno}: calls {func.value.id}.load")
    assert not offenders, offenders


def test_config_classes_have_no_loader_of_their_own():
    classes = [*TABLES.values(), AgentSpec]
    assert [c.__name__ for c in classes if hasattr(c, "load") or hasattr(c, "from_mapping")] == []


def test_environment_variables_are_named_once_and_never_read_by_a_literal_name():
    named: dict[str, list[str]] = {}
    literal_reads = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str) and node.value.value.startswith("AGENT_PIPELINE_"):
                named.setdefault(node.value.value, []).append(str(path.relative_to(ROOT)))
            args = node.args if isinstance(node, ast.Call) else [node.slice] if isinstance(node, ast.Subscript) \
                else []
            for arg in args[:1]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) \
                        and arg.value.startswith("AGENT_PIPELINE_"):
                    literal_reads.append(f"{path.relative_to(ROOT)}:{node.lineno}: {arg.value}")
    assert not literal_reads, literal_reads
    assert {name: paths for name, paths in named.items() if len(paths) > 1} == {}
    assert {"AGENT_PIPELINE_HOME", "AGENT_PIPELINE_PUSHGATEWAY_URL", "AGENT_PIPELINE_PUSHGATEWAY_USERNAME",
            "AGENT_PIPELINE_PUSHGATEWAY_PASSWORD"} <= set(named)


def test_the_readme_reference_lists_every_key_as_declared():
    from agent_pipeline.pipeline_settings import settings_reference

    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- settings-reference:start -->\n")[1].split("<!-- settings-reference:end -->")[0]
    assert block == settings_reference()  # regenerate: print(settings_reference()) between the two markers
