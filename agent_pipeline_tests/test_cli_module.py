"""The CLI runs as ``python -m agent_pipeline.cli`` too (where the console script is not on PATH)."""

import subprocess
import sys


def test_the_cli_runs_as_a_module(pipeline_home):
    done = subprocess.run([sys.executable, "-m", "agent_pipeline.cli", "kill-switch", "status"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "kill switch: ACTIVE" in done.stdout
