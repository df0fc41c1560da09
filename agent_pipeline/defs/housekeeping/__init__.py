"""Run retention for the Dagster instance: Dagster OSS keeps every run forever, and the agents alone start ~1,500 runs
a day (each with its own event log, compute logs and stored outputs), so `.dagster_home` grew by 0.7 GB a day.

A daily schedule deletes the finished runs of the high-volume jobs (agent runs, metrics publishes and this purge
itself) once they are ``keep_days`` old (failed ones after ``keep_failed_days``): the run, its events, its compute
logs and stored outputs, and on the default SQLite storage the per-run event database file. Every agent run is also
a row of ``agent_events``, which is never touched; the run records are for debugging. Asset and control runs (rewards, allocation, kill switch) are never
touched: their materializations are the assets' history. Tick retention is in ops/dagster.dev.yaml (`retention:`).
"""

import os
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from agent_pipeline.agents import LoadedAgent
from agent_pipeline.defs.metrics.publishing import PUBLISH_JOB, is_agent_job
from agent_pipeline.defs.scheduled_op import scheduled_op_job
from agent_pipeline.pipeline_settings import Settings

PURGE_JOB = "purge_old_runs"
PURGE_CRON = "40 3 * * *"
DOMAINS = ["agents", "metrics", "housekeeping"]  # the run tags of the jobs below


def purgeable(job_name: str) -> bool:
    return is_agent_job(job_name) or job_name in (PUBLISH_JOB, PURGE_JOB)


class RunRetention(dg.Config):
    keep_days: float = Field(default=3.0, gt=0, description="Succeeded or canceled runs older than this many days "
                                                            "are deleted.")
    keep_failed_days: float = Field(default=14.0, gt=0, description="Failed runs older than this many days are "
                                                                    "deleted.")
    max_runs: int = Field(default=20_000, gt=0, description="At most this many runs per purge (the next one goes on).")


def _delete_local_files(instance: dg.DagsterInstance, run_id: str) -> None:
    """What delete_run leaves behind: compute logs, stored outputs, and SQLite's per-run event database."""
    instance.compute_log_manager.delete_logs(prefix=[run_id])
    outputs = os.path.join(instance.storage_directory(), run_id)  # where fs_io_manager pickles a run's outputs
    if os.path.isdir(outputs):
        shutil.rmtree(outputs)
    storage = instance.event_log_storage
    if hasattr(storage, "path_for_shard"):  # SqliteEventLogStorage: one file per run, never shrunk by a delete
        path = storage.path_for_shard(run_id)
        if os.path.isfile(path):
            os.remove(path)


@dg.op(description="Delete agent, publish and purge runs that finished more than keep_days ago (failed ones: "
                   "keep_failed_days), with their events, logs and stored outputs. Asset and control runs are kept.",
       out=dg.Out(dict, description="How many runs were deleted, and the cutoff."), tags={"domain": "housekeeping"})
def purge_old_runs_op(context: dg.OpExecutionContext, config: RunRetention) -> dict:
    instance = context.instance
    now = datetime.now(UTC)
    cutoff, failed_cutoff = now - timedelta(days=config.keep_days), now - timedelta(days=config.keep_failed_days)
    records = [
        *instance.get_run_records(
            filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.CANCELED],
                                  created_before=cutoff, tags={"domain": DOMAINS}),
            limit=config.max_runs, ascending=True),
        *instance.get_run_records(
            filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], created_before=failed_cutoff,
                                  tags={"domain": DOMAINS}),
            limit=config.max_runs, ascending=True),
    ]
    deleted, by_job = 0, {}
    for record in records:
        run = record.dagster_run
        if run.run_id == context.run_id or not purgeable(run.job_name):
            continue
        instance.delete_run(run.run_id)
        _delete_local_files(instance, run.run_id)
        deleted += 1
        by_job[run.job_name] = by_job.get(run.job_name, 0) + 1
    summary = {"deleted": deleted, "cutoff": cutoff.isoformat(), "failed_cutoff": failed_cutoff.isoformat(),
               "more_left": len(records) >= config.max_runs}
    context.add_output_metadata({**summary, "by_job": dg.MetadataValue.json(by_job)})
    context.log.info(f"deleted {deleted} finished runs created before {cutoff:%Y-%m-%d %H:%M}Z")
    return summary


purge_old_runs_job, purge_old_runs_schedule = scheduled_op_job(
    purge_old_runs_op, PURGE_JOB, PURGE_CRON, domain="housekeeping",
    job_description="Delete old finished runs of the high-volume jobs (run retention).",
    schedule_description="Daily run retention: deletes agent, publish and purge runs after 3 days (failed ones "
                         "after 14).")


def build_defs(settings: Settings, registry: Mapping[str, LoadedAgent]) -> dg.Definitions:
    """Run retention has no setting of its own (its run config says how long to keep); the signature is every
    domain's."""
    return dg.Definitions(jobs=[purge_old_runs_job], schedules=[purge_old_runs_schedule])
