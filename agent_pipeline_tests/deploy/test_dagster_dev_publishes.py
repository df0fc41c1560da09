"""End to end with the real daemon: `dagster dev` runs the agents, and the end-of-run publish sensor brings their
metrics into a real Prometheus (through the Pushgateway started by ops/start-local-stack.sh) within one push."""

import time

import pytest

from agent_pipeline_tests.dagster_dev import graphql, running_dagster_dev
from agent_pipeline_tests.deploy.test_stack_integration import pytestmark as _marks
from agent_pipeline_tests.deploy.test_stack_integration import stack  # noqa: F401  (fixture)
from agent_pipeline_tests.metrics.helpers import truth

pytestmark = [pytest.mark.e2e, *_marks[1:]]
REPOS = """{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"""


def test_dagster_dev_runs_end_with_a_push_that_prometheus_scrapes(stack, tmp_path, pipeline_home, store):  # noqa: F811
    (pipeline_home / "config.toml").write_text("[market]\nfault_rate = 0.0\n")
    with running_dagster_dev(tmp_path, pipeline_home, {"AGENT_PIPELINE_PUSHGATEWAY_URL": stack.gateway}) as dev:
        def repo_name():
            dev.alive()
            nodes = graphql(dev.port, REPOS)["repositoriesOrError"].get("nodes") or []
            return next((n["name"] for n in nodes if n["location"]["name"] == "agent_pipeline"), None)

        repo = stack.wait_for(repo_name, "dagster dev to load the location", timeout_s=180)
        time.sleep(8)  # let the publish sensors take their first tick (it only sets the cursor)
        dev.launch(repo, "agent_runs")

        def in_sync():
            stored = sum(t["runs"] for t in truth(store).values()) if store.path.exists() else 0
            got = stack.query("sum(agent_runs_total)")
            return stored >= 3 and got and float(got[0]["value"][1]) == stored

        stack.wait_for(in_sync, "the end-of-run push to reach Prometheus", timeout_s=150)
        # the run itself never waits on the gateway; its metrics were pushed by the daemon's sensor
        assert stack.query('push_time_seconds{job="agent_pipeline"}')
