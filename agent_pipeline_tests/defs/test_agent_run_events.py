"""Both callers, the Dagster op and ``agent-pipeline agents run``, store one event for every run whatever the agent
raises, then let KeyboardInterrupt / SystemExit through; each run gets its own copy of the agent's params."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent_pipeline.agents import AgentContext, run_instrumented
from agent_pipeline.cli import main
from agent_pipeline.market import SimulatedMarket
from agent_pipeline.reward import RewardConfig
from agent_pipeline.store import Store, read_events
from agent_pipeline_tests.location import loaded as loaded_location

AGENTS = textwrap.dedent("""
    import time
    from pathlib import Path

    def exits(ctx):
        raise SystemExit(3)

    def interrupts(ctx):
        raise KeyboardInterrupt

    def generator_exit(ctx):
        raise GeneratorExit

    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no str")

        def __repr__(self):
            raise RuntimeError("no repr")

    def unprintable(ctx):
        raise Unprintable()

    def greedy(ctx):
        ctx.params["seen"].append(len(ctx.params["seen"]))
        ctx.params["added"] = True
        return [{"profit_pct": float(len(ctx.params["seen"]))}]

    class Hoarder:
        kind, strategy = "signal", "hoard"

        def __init__(self, symbols):
            self.symbols = symbols  # the constructor's argument, kept

        def run(self, ctx):
            self.symbols.append("DOGE-USD")
            return [{"profit_pct": 0.1}]

    def sleepy(ctx):
        Path(ctx.params["ready"]).write_text("started")
        time.sleep(30)
        return []
""")


@pytest.fixture
def user_agents(pipeline_home, tmp_path, monkeypatch):
    (tmp_path / "run_event_agents.py").write_text(AGENTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    entries = "\n".join(
        f'[[agents]]\nname = "{name}"\nref = "run_event_agents:{ref}"\nstrategy = "{name}"\n{extra}'
        for name, ref, extra in [
            ("exits", "exits", ""), ("interrupts", "interrupts", ""), ("generator_exit", "generator_exit", ""),
            ("unprintable", "unprintable", ""),
            ("greedy", "greedy", 'params = { seen = [], limit = { n = 1 } }\n'),
            ("hoarder", "Hoarder", 'params = { symbols = ["BTC-USD"] }\n'),
            ("sleepy", "sleepy", f'timeout_sec = 60\nparams = {{ ready = "{tmp_path / "ready"}" }}\n'),
        ])
    (pipeline_home / "config.toml").write_text(f"builtin_agents = false\n[market]\nfault_rate = 0.0\n{entries}")
    return tmp_path


def load_defs():
    import agent_pipeline.defs.agents as agents_defs
    from agent_pipeline_tests.location import domain_defs

    return domain_defs(agents_defs)


def stored():
    return read_events(Store.at_home())


@pytest.mark.parametrize("name, error", [
    ("exits", "SystemExit: 3"),
    ("interrupts", "KeyboardInterrupt"),
    ("generator_exit", "GeneratorExit"),
    ("unprintable", "Unprintable: <message unavailable: the exception's __str__ and __repr__ raise>"),
])
def test_the_op_stores_one_event_whatever_the_agent_raises(user_agents, name, error):
    result = load_defs().resolve_job_def(f"agent__{name}").execute_in_process(raise_on_error=False)
    assert not result.success
    events = stored()
    assert len(events) == 1
    row = events.iloc[0]
    assert row["agent"] == name and row["error"] == error and row["run_id"] == result.run_id
    assert row["source"] == "dagster"


@pytest.mark.parametrize("name, outcome", [
    ("exits", SystemExit),
    ("interrupts", 130),  # the console script's answer to Ctrl-C
    ("unprintable", 1),
])
def test_agents_run_stores_the_event_before_anything_propagates(user_agents, name, outcome):
    if isinstance(outcome, int):
        assert main(["agents", "run", name]) == outcome
    else:
        with pytest.raises(outcome):
            main(["agents", "run", name])
    (row,) = stored().itertuples()
    assert row.agent == name and row.source == "cli" and row.error


def test_ctrl_c_while_the_agent_runs_still_leaves_an_event(user_agents, pipeline_home):
    ready = user_agents / "ready"
    env = {**os.environ, "AGENT_PIPELINE_HOME": str(pipeline_home),
           "PYTHONPATH": os.pathsep.join([str(user_agents), str(Path(__file__).resolve().parents[2])])}
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from agent_pipeline.cli import main; sys.exit(main(sys.argv[1:]))",
         "agents", "run", "sleepy"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), proc.stderr.read().decode() if proc.poll() is not None else "agent never started"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (row,) = stored().itertuples()
    assert row.agent == "sleepy" and row.error_type == "KeyboardInterrupt"
    assert "interrupted while waiting for the agent" in row.error and "still running" in row.error


def test_each_run_gets_its_own_params(user_agents):
    job = load_defs().resolve_job_def("agent__greedy")
    first, second = (job.execute_in_process(raise_on_error=False) for _ in range(2))
    assert first.success and second.success
    outputs = [r.output_for_node("run_greedy")["output"] for r in (first, second)]
    assert outputs == [[{"profit_pct": 1.0}], [{"profit_pct": 1.0}]]  # the second run did not see the first's edits
    spec = loaded_location()[1]["greedy"].spec
    assert spec.params == {"seen": [], "limit": {"n": 1}}


def test_an_agent_mutating_its_params_changes_neither_the_spec_nor_the_fingerprint(user_agents):
    registry = loaded_location()[1]
    for name in ("greedy", "hoarder"):
        loaded = registry[name]
        before = (loaded.spec.fingerprint(), repr(loaded.spec.params))
        for i in range(2):
            ctx = AgentContext(now=datetime.now(UTC), market=SimulatedMarket(fault_rate=0), params=loaded.spec.params,
                               run_id=f"r{i}")
            assert run_instrumented(loaded, ctx, RewardConfig()).ok
        assert (loaded.spec.fingerprint(), repr(loaded.spec.params)) == before, name
