"""Retention: the dev instance config purges old ticks, and the purge_old_runs job deletes old finished agent and
publish runs with everything they left on disk, while asset runs and recent runs stay. A real SQLite instance in a
temporary DAGSTER_HOME, real jobs."""

import shutil
import time
from pathlib import Path

import dagster as dg
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.scheduler.instigation import TickStatus

from agent_pipeline.definitions import build_location
from agent_pipeline.defs.housekeeping import PURGE_JOB, purge_old_runs_job
from agent_pipeline.defs.metrics import PushgatewayResource
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline_tests.conftest import free_port
from agent_pipeline_tests.deploy.promql import OPS


def _instance(tmp_path: Path) -> dg.DagsterInstance:
    """The instance `make run` gets: DAGSTER_HOME holding a copy of ops/dagster.dev.yaml."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(OPS / "dagster.dev.yaml", home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))


def test_the_dev_instance_purges_skipped_sensor_ticks_after_a_day_and_keeps_schedule_ticks_a_week(tmp_path):
    instance = _instance(tmp_path)
    sensor = instance.get_tick_retention_settings(InstigatorType.SENSOR)
    schedule = instance.get_tick_retention_settings(InstigatorType.SCHEDULE)
    assert sensor[TickStatus.SKIPPED] == 1 and sensor[TickStatus.FAILURE] == 14
    assert set(schedule.values()) == {7}  # Dagster's default keeps schedule ticks forever (-1)


@dg.asset(description="stands for an asset of the pipeline: its runs are its history and are never purged")
def kept_asset() -> dg.MaterializeResult:
    return dg.MaterializeResult()


@dg.op
def agent_op_that_fails():
    raise RuntimeError("venue down")


@dg.job(name="agent__failing", tags={"domain": "agents"}, description="an agent job whose run fails")
def failing_agent_job():
    agent_op_that_fails()


def location() -> dg.Definitions:
    """The code location of this test's home (the module's own ``defs`` belong to whoever imported it first)."""
    return build_location(Settings.load())


def _files_of(instance: dg.DagsterInstance, run_id: str) -> list[Path]:
    storage = Path(instance.storage_directory())
    shard = Path(instance.event_log_storage.path_for_shard(run_id))
    return [p for p in (storage / run_id, shard) if p.exists()]


def test_old_agent_and_publish_runs_are_deleted_with_their_files_asset_and_recent_runs_stay(tmp_path, store):
    instance = _instance(tmp_path)
    gateway = {"pushgateway": PushgatewayResource.of(gateway_url=f"http://127.0.0.1:{free_port()}", timeout_s=1)}
    agent = location().get_job_def("agent__momentum").execute_in_process(
        instance=instance, resources={"io_manager": dg.FilesystemIOManager()})  # outputs pickled, as other jobs do
    failed = failing_agent_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not failed.success  # failed runs are kept longer (keep_failed_days)
    publish = location().get_job_def("publish_metrics").execute_in_process(instance=instance, resources=gateway)
    asset = dg.materialize([kept_asset], instance=instance)
    assert agent.success and publish.success and asset.success
    assert len(_files_of(instance, agent.run_id)) == 2  # outputs + compute logs, and the run's event database
    time.sleep(0.6)
    between = time.time()
    time.sleep(1.0)  # more than the purge job takes to start: its cutoff falls between the old runs and this one
    recent = location().get_job_def("publish_metrics").execute_in_process(instance=instance, resources=gateway)

    keep_days = (time.time() - between) / 86400
    result = purge_old_runs_job.execute_in_process(
        instance=instance, run_config={"ops": {"purge_old_runs_op": {"config": {"keep_days": keep_days}}}})
    assert result.success and result.output_for_node("purge_old_runs_op")["deleted"] == 2
    for old in (agent, publish):
        assert _files_of(instance, old.run_id) == []
        assert instance.get_run_by_id(old.run_id) is None
        assert not instance.get_run_records(dg.RunsFilter(run_ids=[old.run_id]))
    for kept in (asset, recent, result, failed):
        assert instance.get_run_by_id(kept.run_id) is not None
    assert instance.get_latest_materialization_event(kept_asset.key) is not None
    assert instance.get_run_by_id(result.run_id).job_name == PURGE_JOB


def _agent_momentum_job() -> dg.JobDefinition:
    return location().get_job_def("agent__momentum")


def test_an_agent_run_launched_as_dagster_dev_does_pickles_no_op_output(tmp_path, store):
    instance = _instance(tmp_path)
    with dg.execute_job(dg.reconstructable(_agent_momentum_job), instance=instance) as result:
        assert result.success
        run_id = result.run_id
    with store.connect(read_only=True) as conn:  # the agent's proposal still reached the gate within the run
        assert conn.execute("SELECT count(*) FROM gate_decisions WHERE agent = 'momentum'").fetchone()[0] == 1
    run_storage = Path(instance.storage_directory()) / run_id
    assert {p.name for p in run_storage.iterdir()} <= {"compute_logs"}, list(run_storage.rglob("*"))
