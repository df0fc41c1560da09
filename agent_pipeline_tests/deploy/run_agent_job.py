"""Run one agent job in this (separate) process, then do what the daemon does at the end of it: evaluate the
metrics end-of-run sensor, which publishes to the Pushgateway.

    python run_agent_job.py JOB GATEWAY_URL [MARKET_JSON]    # MARKET_JSON: [market] keys over config.toml's,
                                                             # e.g. {"fault_rate": 1}

Prints one JSON line: {"success": ..., "sensor": <skip message>}.
"""

import json
import sys

import dagster as dg


def main(job_name: str, gateway: str, market: dict) -> None:
    from agent_pipeline.definitions import defs
    from agent_pipeline.defs.metrics import PushgatewayResource
    from agent_pipeline.defs.metrics.publishing import publish_on_failure, publish_on_success
    from agent_pipeline.defs.resources import MarketResource
    from agent_pipeline.market import MarketConfig
    from agent_pipeline.pipeline_settings import Settings

    instance = dg.DagsterInstance.ephemeral()
    job = defs.get_job_def(job_name)
    settings = Settings.load()
    market_config = MarketConfig.from_table({**settings.market.as_table(), **market})
    result = job.execute_in_process(instance=instance, raise_on_error=False,
                                    resources={"market": MarketResource.from_config(market_config)})
    sensor = publish_on_success if result.success else publish_on_failure
    event = result.get_run_success_event() if result.success else result.get_run_failure_event()
    ctx = dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=event, dagster_instance=instance,
                                             dagster_run=result.dagster_run,
                                             resources={"pushgateway": PushgatewayResource.of(gateway_url=gateway,
                                                                                               timeout_s=3)})
    if not result.success:
        ctx = ctx.for_run_failure()
    out = sensor(ctx)
    print(json.dumps({"success": result.success, "sensor": getattr(out, "skip_message", str(out))}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else {})
