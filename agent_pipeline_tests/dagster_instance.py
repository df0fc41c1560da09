"""Checks of a deployment's dagster.yaml against Dagster's own instance schema, shared by the deployments' tests."""

from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config_schema


def assert_valid_on_postgres(cfg: dict, env: dict, monkeypatch) -> None:
    """``cfg`` is a valid instance config whose PostgreSQL storage reads only variables ``env`` sets (set here from
    ``env``, as the deployment would)."""
    wanted = {v["env"] for v in cfg["storage"]["postgres"]["postgres_db"].values() if isinstance(v, dict)}
    assert wanted <= set(env), wanted - set(env)
    for key in wanted:
        monkeypatch.setenv(key, str(env[key]))
    assert_valid(cfg)


def assert_valid(cfg: dict) -> None:
    result = process_config(dagster_instance_config_schema(), cfg)
    assert result.success, [e.message for e in result.errors]
