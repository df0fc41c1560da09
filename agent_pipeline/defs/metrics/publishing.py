"""When metrics are published: at the end of every agent run (success or failure) and on a schedule."""

import dagster as dg

from agent_pipeline.defs.metrics.resources import PushgatewayResource
from agent_pipeline.defs.scheduled_op import scheduled_op_job

PUBLISH_JOB = "publish_metrics"
PUBLISH_CRON = "*/5 * * * *"
AGENT_JOB_NAMES = ("agent_runs", "agent_tick")  # agent_tick: the quota tick (defs/agents/tick.py)
AGENT_JOB_PREFIX = "agent__"


def is_agent_job(job_name: str) -> bool:
    return job_name in AGENT_JOB_NAMES or job_name.startswith(AGENT_JOB_PREFIX)


def _metadata(result) -> dict:
    return {"status": result.status, "gateway": result.gateway, "events": result.events,
            "payload_bytes": result.payload_bytes, "seconds": round(result.seconds, 4),
            "push_failures_total": result.state.failures, **({"error": result.error} if result.error else {})}


@dg.op(description="Compute the metrics snapshot from the store and PUT it to the Pushgateway. Never fails "
                   "because the gateway is down: that is logged, counted and caught up by the next publish.",
       out=dg.Out(dict, description="Outcome of the push (status, events, payload size, failures so far)."))
def publish_metrics_op(context: dg.OpExecutionContext, pushgateway: PushgatewayResource) -> dict:
    result = pushgateway.publish(context.log)
    context.add_output_metadata(_metadata(result))
    return _metadata(result)


publish_metrics_job, publish_metrics_schedule = scheduled_op_job(
    publish_metrics_op, PUBLISH_JOB, PUBLISH_CRON, domain="metrics",
    job_description="Publish the store-computed metrics to the Pushgateway once.",
    schedule_description="Publishes metrics every 5 minutes as a catch-up (kill switch, quotas and failed pushes "
                         "change without an agent run); the end-of-run sensors publish after every agent run.")


def _publish_after_run(context, pushgateway: PushgatewayResource, outcome: str):
    run = context.dagster_run
    if not is_agent_job(run.job_name):
        return dg.SkipReason(f"run {run.run_id} of job {run.job_name} is not an agent run; nothing to publish")
    ended_at = _run_end_time(context)
    state = pushgateway.state()
    if ended_at is not None and state.last_snapshot_at > ended_at:
        return dg.SkipReason(f"a snapshot taken after run {run.run_id} ended is already published")
    result = pushgateway.publish(context.log)
    message = f"after {outcome} run {run.run_id} of {run.job_name}: {result.brief()}"
    context.log.info(message)
    return dg.SkipReason(message)  # a publish never launches a run; the reason is the tick's log line


def _run_end_time(context):
    try:
        stats = context.instance.get_run_stats(context.dagster_run.run_id)
        return stats.end_time
    except Exception:
        return None


@dg.run_status_sensor(
    name="publish_metrics_on_agent_success", run_status=dg.DagsterRunStatus.SUCCESS,
    default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=5,
    description="After each successful agent run (agent_runs, agent__*), publish the store-computed metrics to "
                "the Pushgateway, so the run shows in Prometheus within one push.",
)
def publish_on_success(context: dg.RunStatusSensorContext, pushgateway: PushgatewayResource):
    return _publish_after_run(context, pushgateway, "successful")


@dg.run_failure_sensor(
    name="publish_metrics_on_agent_failure", default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
    description="After each failed agent run (agent_runs, agent__*), publish the store-computed metrics (the "
                "failed run's error event is in the store) to the Pushgateway.",
)
def publish_on_failure(context: dg.RunFailureSensorContext, pushgateway: PushgatewayResource):
    return _publish_after_run(context, pushgateway, "failed")
