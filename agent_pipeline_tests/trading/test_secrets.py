"""Hidden case 4 of issue 9: the keys are read once at the edge and leave the process environment.

An agent runs in the pipeline's process; before this, ``os.environ`` held the kill switch's MAC key and the
approval keys for it to read (or to pass to any subprocess it starts).
"""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from agent_pipeline.agents import AgentContext
from agent_pipeline.agents.config import AgentSpec
from agent_pipeline.agents.instrumentation import run_instrumented
from agent_pipeline.agents.registry import FunctionAgent, LoadedAgent
from agent_pipeline.market import SimulatedMarket
from agent_pipeline.reward import RewardConfig
from agent_pipeline.trading import KillSwitch
from agent_pipeline.trading.approvals import approval_key, signing_key
from agent_pipeline.trading.secrets import SECRET_NAMES, forget_secrets, secret, take_secrets

VALUES = {"AGENT_PIPELINE_KILL_SWITCH_KEY": "ks-key", "AGENT_PIPELINE_APPROVAL_KEY": "shared-key",
          "AGENT_PIPELINE_APPROVER_KEYS": json.dumps({"alice": "a-key", "bob": "b-key"}),
          "AGENT_PIPELINE_APPROVER_KEY": "a-key"}


@pytest.fixture
def secrets_in_env(monkeypatch):
    assert set(VALUES) == set(SECRET_NAMES)
    for name, value in VALUES.items():
        monkeypatch.setenv(name, value)
    yield
    forget_secrets()


def test_taken_secrets_leave_the_environment_and_still_serve_the_readers(secrets_in_env, tmp_path):
    assert set(take_secrets()) == set(SECRET_NAMES)
    assert not any(name in os.environ for name in SECRET_NAMES)
    assert [secret(name) for name in SECRET_NAMES] == [VALUES[name] for name in SECRET_NAMES]
    kill = KillSwitch(tmp_path / "ks.json")
    assert kill.keyed
    kill.trip("test", by="ops")
    assert json.loads((tmp_path / "ks.json").read_text())["alg"] == "hmac-sha256"
    keys = approval_key()
    assert keys.shared == b"shared-key" and len(keys.approvers) == 2 and not keys.problem
    assert signing_key("alice") == b"a-key"


def test_an_agent_run_after_the_take_sees_no_secret_in_its_environment(secrets_in_env):
    take_secrets()
    seen = {}

    def nosy(ctx):
        seen.update({k: v for k, v in os.environ.items() if k.startswith("AGENT_PIPELINE_") and "KEY" in k})
        child = subprocess.run([sys.executable, "-c", "import os, json; print(json.dumps(dict(os.environ)))"],
                               capture_output=True, text=True, check=True)
        seen.update({k: v for k, v in json.loads(child.stdout).items() if k in SECRET_NAMES})
        return [{"profit_pct": 0.1}]

    loaded = LoadedAgent(AgentSpec(name="nosy", ref="t:nosy"), FunctionAgent("nosy", "signal", "nosy", nosy))
    ctx = AgentContext(now=datetime.now(UTC), market=SimulatedMarket(fault_rate=0), run_id="r1")
    assert run_instrumented(loaded, ctx, RewardConfig()).ok
    assert seen == {}


def test_loading_the_code_location_takes_the_secrets_before_any_agent_is_imported(secrets_in_env, tmp_path):
    probe = tmp_path / "probe_agents.py"
    probe.write_text("import os, json\n"
                     f"SEEN = sorted(k for k in os.environ if k in {list(SECRET_NAMES)!r})\n"
                     "open(os.environ['PROBE_OUT'], 'w').write(json.dumps(SEEN))\n"
                     "def probe(ctx):\n    return []\n")
    home = tmp_path / "location_home"
    home.mkdir()
    (home / "config.toml").write_text('[[agents]]\nname = "probe"\nref = "probe_agents:probe"\n')
    out = tmp_path / "seen.json"
    env = {**os.environ, "AGENT_PIPELINE_HOME": str(home), "PROBE_OUT": str(out),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    subprocess.run([sys.executable, "-c", "import agent_pipeline.definitions"], env=env, check=True,
                   capture_output=True, timeout=300)
    assert json.loads(out.read_text()) == []
