"""The compose file describes the same stack as the loopback script, plus Grafana and Dagster on Postgres; with
no Docker engine here it is checked by parsing it and cross-checking every file it mounts or builds from."""

import re

import yaml

from agent_pipeline_tests.dagster_instance import assert_valid, assert_valid_on_postgres
from agent_pipeline_tests.deploy.promql import OPS

ROOT = OPS.parent


def compose() -> dict:
    return yaml.safe_load((OPS / "docker-compose.yml").read_text())


def test_services_and_loopback_ports():
    services = compose()["services"]
    assert {"prometheus", "pushgateway", "grafana", "dagster-webserver", "dagster-daemon", "postgres"} <= set(services)
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert services["dagster-daemon"]["command"][:2] == ["dagster-daemon", "run"]
    assert services["dagster-webserver"]["command"][0] == "dagster-webserver"


def test_every_mounted_file_exists_and_is_the_one_the_tests_check():
    services = compose()["services"]
    mounts = {}
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src, dst = vol.split(":")[:2]
            if src.startswith("."):
                assert (OPS / src).exists(), (name, src)
                mounts[dst] = (OPS / src).resolve()
    assert mounts["/etc/prometheus/prometheus.yml"] == (OPS / "prometheus/prometheus.yml").resolve()
    assert mounts["/etc/prometheus/rules"] == (OPS / "prometheus/rules").resolve()
    prov = yaml.safe_load((OPS / "grafana/provisioning/dashboards/agent_pipeline.yml").read_text())["providers"][0]
    assert list(mounts[prov["options"]["path"]].glob("*.json"))
    assert mounts["/etc/grafana/provisioning"] == (OPS / "grafana/provisioning").resolve()
    prom = yaml.safe_load((OPS / "prometheus/prometheus.yml").read_text())
    assert prom["rule_files"] == ["rules/*.yml"]  # relative to /etc/prometheus/prometheus.yml


def test_names_agree_across_files():
    services = compose()["services"]
    prom = yaml.safe_load((OPS / "prometheus/prometheus.yml").read_text())
    target = prom["scrape_configs"][0]["static_configs"][0]["targets"][0]
    host, port = target.split(":")
    assert host in services and any(str(p).endswith(f":{port}") for p in services[host]["ports"])
    ds = yaml.safe_load((OPS / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    assert re.fullmatch(r"http://prometheus:9090", ds["url"]) and "prometheus" in services
    env = services["dagster-daemon"]["environment"]
    assert env["AGENT_PIPELINE_PUSHGATEWAY_URL"] == f"http://pushgateway:{port}"
    assert services["dagster-webserver"]["volumes"] == services["dagster-daemon"]["volumes"]  # one store


def test_dagster_image_builds_from_files_that_exist():
    build = compose()["services"]["dagster-daemon"]["build"]
    context = (OPS / build["context"]).resolve()
    assert context == ROOT.resolve()
    dockerfile = context / build["dockerfile"]
    text = dockerfile.read_text()
    for line in text.splitlines():
        if line.startswith("COPY"):
            for src in line.split()[1:-1]:
                assert (context / src).exists(), src
    assert "dagster-postgres" in text and "ops/dagster.yaml" in text
    assert "workspace.yaml" in " ".join(compose()["services"]["dagster-daemon"]["command"])


def test_dagster_yaml_is_a_valid_instance_config_on_postgres(monkeypatch):
    cfg = yaml.safe_load((OPS / "dagster.yaml").read_text())
    assert "postgres" in cfg["storage"]
    env = compose()["services"]["dagster-daemon"]["environment"]
    assert_valid_on_postgres(cfg, env, monkeypatch)
    assert env["DAGSTER_POSTGRES_HOST"] in compose()["services"]


def test_dev_instance_config_is_still_valid():
    cfg = yaml.safe_load((OPS / "dagster.dev.yaml").read_text())
    assert_valid(cfg)
