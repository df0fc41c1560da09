"""The multi-host deployment files (ops/multihost), checked without a Docker engine: they parse, dagster.yaml is a
valid instance config on PostgreSQL with the DockerRunLauncher, and every name, file and variable they refer to
exists where another file expects it."""

from __future__ import annotations

from pathlib import Path

import yaml

from agent_pipeline.store import Store
from agent_pipeline.store.config import STORE_URL_ENV
from agent_pipeline.store.postgres import PostgresStore
from agent_pipeline_tests.dagster_instance import assert_valid_on_postgres

ROOT = Path(__file__).resolve().parents[2]
MULTIHOST = ROOT / "ops" / "multihost"


def _compose() -> dict:
    return yaml.safe_load((MULTIHOST / "docker-compose.yml").read_text())


def _instance() -> dict:
    return yaml.safe_load((MULTIHOST / "dagster.yaml").read_text())


def test_dagster_yaml_is_a_valid_instance_config_with_postgres_storage_and_the_docker_launcher(monkeypatch):
    cfg = _instance()
    assert_valid_on_postgres(cfg, _compose()["x-pipeline-env"], monkeypatch)
    assert (cfg["run_launcher"]["module"], cfg["run_launcher"]["class"]) == ("dagster_docker", "DockerRunLauncher")


def test_run_containers_get_the_store_and_reach_it_over_the_named_network():
    launcher, compose = _instance()["run_launcher"]["config"], _compose()
    env = compose["x-pipeline-env"]
    assert {STORE_URL_ENV, "PGPASSWORD", "AGENT_PIPELINE_PUSHGATEWAY_URL", "DAGSTER_POSTGRES_HOST"} <= \
        set(launcher["env_vars"])
    assert set(launcher["env_vars"]) - {"AGENT_PIPELINE_KILL_SWITCH_KEY"} <= set(env)  # the key: the operator's
    assert launcher["network"] == compose["networks"]["pipeline"]["name"]
    store = Store(env[STORE_URL_ENV])
    assert isinstance(store, PostgresStore) and "@postgres:" in env[STORE_URL_ENV]
    assert env["DAGSTER_CURRENT_IMAGE"] == compose["services"]["code-location"]["image"]


def test_no_service_keeps_pipeline_state_on_a_volume_and_ports_stay_on_loopback():
    services = _compose()["services"]
    for name in ("code-location", "dagster-webserver", "dagster-daemon", "store-migrate"):
        merged = services[name]
        volumes = merged.get("volumes", [])
        assert all(v.startswith("/var/run/docker.sock:") for v in volumes), (name, volumes)
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert services["store-migrate"]["command"] == ["agent-pipeline", "store", "migrate"]
    assert services["code-location"]["depends_on"]["store-migrate"]["condition"] == \
        "service_completed_successfully"


def test_every_file_the_deployment_names_exists():
    compose = _compose()
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (MULTIHOST / source).exists(), (name, source)
    build = compose["services"]["store-migrate"]["build"]
    context = (MULTIHOST / build["context"]).resolve()
    assert context == ROOT
    dockerfile = (context / build["dockerfile"]).read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY"):
            for source in line.split()[1:-1]:
                assert (context / source).exists(), source
    assert "dagster-docker" in dockerfile and ".[postgres]" in dockerfile
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "postgres = [" in pyproject and "dagster-docker" not in pyproject  # only in the image
    workspace = yaml.safe_load((MULTIHOST / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    code = compose["services"]["code-location"]["command"]
    assert workspace["host"] in compose["services"] and str(workspace["port"]) == code[code.index("-p") + 1]
    assert "agent_pipeline.definitions" in code


def test_the_database_init_script_creates_the_store_the_url_names():
    script = (MULTIHOST / "initdb" / "10-agent-pipeline.sql").read_text()
    url = _compose()["x-pipeline-env"][STORE_URL_ENV]
    role, database = url.split("://")[1].split("@")[0], url.rsplit("/", 1)[1]
    assert f"CREATE ROLE {role} LOGIN" in script and f"CREATE DATABASE {database} OWNER {role}" in script
    assert f"PASSWORD '{_compose()['x-pipeline-env']['PGPASSWORD']}'" in script
