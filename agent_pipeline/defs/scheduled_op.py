"""A job of one op on a cron, for the loop's chores (metrics catch-up, run retention).

One op, run in the launching process (no subprocess per step: the chore is small and frequent), tagged with its
domain so the retention job can select runs by it; the schedule is on from the start.
"""

import dagster as dg


def scheduled_op_job(op: dg.OpDefinition, job_name: str, cron: str, *, domain: str, job_description: str,
                     schedule_description: str) -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    """The job ``job_name`` that runs ``op`` alone and ``<job_name>_schedule``, which launches it at ``cron``."""

    @dg.job(name=job_name, description=job_description, executor_def=dg.in_process_executor,
            tags={"domain": domain})
    def one_op_job():
        op()

    schedule = dg.ScheduleDefinition(name=f"{job_name}_schedule", job=one_op_job, cron_schedule=cron,
                                     default_status=dg.DefaultScheduleStatus.RUNNING,
                                     description=schedule_description)
    return one_op_job, schedule
