"""The code location loads, names itself consistently, and every Dagster object explains itself (the one place
that is checked, for every domain at once)."""

import tomllib
from pathlib import Path

import dagster as dg
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load_and_validate():
    from agent_pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    assert {"agent_runs", "agent__momentum"} <= {j.name for j in repo.get_all_jobs()}
    assert "agent_runs_schedule" in {s.name for s in repo.schedule_defs}


def test_every_object_has_a_description():
    from agent_pipeline.definitions import defs

    repo = defs.get_repository_def()
    missing = [f"job {j.name}" for j in repo.get_all_jobs() if not j.description and not j.name.startswith("__")]
    missing += [f"op {op.name}" for j in repo.get_all_jobs() for op in j.all_node_defs if not op.description]
    missing += [f"schedule {s.name}" for s in repo.schedule_defs if not s.description]
    missing += [f"sensor {s.name}" for s in repo.sensor_defs if not s.description]
    graph = repo.asset_graph
    missing += [f"asset {k.to_user_string()}" for k in graph.get_all_asset_keys()
                if not graph.get(k).description]
    missing += [f"asset check {k.to_user_string()}" for k in graph.asset_check_keys
                if not graph.get_check_spec(k).description]
    for key, resource in defs.resources.items():
        if not (type(resource).__doc__ or "").strip():
            missing.append(f"resource {key}")
    assert not missing, missing


def test_schedules_and_sensors_start_running():
    from agent_pipeline.definitions import defs

    repo = defs.get_repository_def()
    for s in list(repo.schedule_defs) + list(repo.sensor_defs):
        assert s.default_status == dg.DefaultScheduleStatus.RUNNING or \
            s.default_status == dg.DefaultSensorStatus.RUNNING, s.name


def test_pyproject_and_workspace_name_the_same_location():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"][0]["python_module"]
    assert tool == {"module_name": workspace["module_name"], "code_location_name": workspace["location_name"]}
    assert tool["code_location_name"] == "agent_pipeline"
