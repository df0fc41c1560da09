"""Dagster wiring: the end-of-run sensors publish after agent runs (success and failure) and skip other jobs,
the publish job never fails on a down gateway, and basic auth comes from the environment through EnvVar."""

import base64

import dagster as dg

from agent_pipeline.defs.metrics import PushgatewayResource, build_defs
from agent_pipeline.defs.metrics.publishing import (
    is_agent_job,
    publish_metrics_job,
    publish_on_failure,
    publish_on_success,
)
from agent_pipeline.defs.resources import MarketResource, StoreResource
from agent_pipeline_tests.conftest import free_port
from agent_pipeline_tests.location import loaded
from agent_pipeline_tests.metrics.helpers import assert_matches_store, samples, value
from agent_pipeline_tests.metrics.test_publish import Gateway


def _agent_job(name: str):
    from agent_pipeline.definitions import build_location
    from agent_pipeline.pipeline_settings import Settings

    return build_location(Settings.load()).get_job_def(name)


def _run(job, instance, **market):
    return job.execute_in_process(instance=instance, raise_on_error=False,
                                  resources={"store": StoreResource(), "market": MarketResource.of(**market),
                                             "pushgateway": PushgatewayResource.of()})


def _sensor_context(sensor, result, instance, gateway_url):
    event = result.get_run_success_event() if result.success else result.get_run_failure_event()
    ctx = dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=event, dagster_instance=instance,
                                             dagster_run=result.dagster_run,
                                             resources={"pushgateway": PushgatewayResource.of(
                                                 gateway_url=gateway_url)})
    return ctx if result.success else ctx.for_run_failure()


def test_success_sensor_publishes_after_an_agent_run_and_skips_what_is_already_published(store):
    instance = dg.DagsterInstance.ephemeral()
    result = _run(_agent_job("agent__momentum"), instance)
    assert result.success
    with Gateway() as gw:
        out = publish_on_success(_sensor_context(publish_on_success, result, instance, gw.url))
        assert "pushed" in out.skip_message
        again = publish_on_success(_sensor_context(publish_on_success, result, instance, gw.url))
        assert "already published" in again.skip_message
    assert len(gw.requests) == 1
    parsed = samples(gw.requests[0]["body"])
    assert value(parsed, "agent_runs_total", agent="momentum") == 1
    assert_matches_store(parsed, store)


def test_failure_sensor_publishes_the_failed_runs_error_event(store):
    instance = dg.DagsterInstance.ephemeral()
    result = _run(_agent_job("agent_runs"), instance, fault_rate=1.0)
    assert not result.success
    with Gateway() as gw:
        out = publish_on_failure(_sensor_context(publish_on_failure, result, instance, gw.url))
    assert "pushed" in out.skip_message
    parsed = samples(gw.requests[0]["body"])
    errors = sum(v for (name, _), v in parsed.items() if name == "agent_errors_total")
    assert errors >= 1
    assert_matches_store(parsed, store)


def test_sensors_ignore_jobs_that_are_not_agent_runs(store):
    instance = dg.DagsterInstance.ephemeral()
    result = publish_metrics_job.execute_in_process(
        instance=instance,
        resources={"pushgateway": PushgatewayResource.of(gateway_url=f"http://127.0.0.1:{free_port()}")})
    with Gateway() as gw:
        out = publish_on_success(_sensor_context(publish_on_success, result, instance, gw.url))
    assert "not an agent run" in out.skip_message and not gw.requests
    assert is_agent_job("agent_runs") and is_agent_job("agent__momentum") and not is_agent_job("publish_metrics")
    assert is_agent_job("agent_tick")  # the quota tick runs agents too: metrics publish after it, old runs purged


def test_publish_job_succeeds_with_the_gateway_down_and_reports_the_failure(store):
    result = publish_metrics_job.execute_in_process(
        resources={"pushgateway": PushgatewayResource.of(gateway_url=f"http://127.0.0.1:{free_port()}",
                                                         timeout_s=1)})
    assert result.success
    out = result.output_for_node("publish_metrics_op")
    assert out["status"] == "failed" and out["push_failures_total"] == 1


def test_basic_auth_comes_from_the_environment(store, monkeypatch):
    monkeypatch.setenv("AGENT_PIPELINE_PUSHGATEWAY_USERNAME", "ops")
    monkeypatch.setenv("AGENT_PIPELINE_PUSHGATEWAY_PASSWORD", "from-env")
    with Gateway() as gw:
        monkeypatch.setenv("AGENT_PIPELINE_PUSHGATEWAY_URL", gw.url)
        defs = build_defs(*loaded())
        assert isinstance(defs.resources["pushgateway"].password, dg.EnvVar)
        result = defs.get_job_def("publish_metrics").execute_in_process()
    assert result.success
    assert gw.requests[0]["auth"] == "Basic " + base64.b64encode(b"ops:from-env").decode()


def test_the_sensor_tick_message_repeats_no_error_during_an_outage(store):
    """The daemon logs every tick's skip message: only the outage's first failure carries the error."""
    instance = dg.DagsterInstance.ephemeral()
    result = _run(_agent_job("agent__momentum"), instance)
    down = f"http://127.0.0.1:{free_port()}"
    first = publish_on_success(_sensor_context(publish_on_success, result, instance, down)).skip_message
    again = publish_on_success(_sensor_context(publish_on_success, result, instance, down)).skip_message
    assert "failed" in first and "Connection refused" in first
    assert "failed" in again and "still unreachable" in again and "Connection refused" not in again


def test_the_pipelines_publish_carries_registered_agents_before_their_first_live_run(store, monkeypatch):
    """The registry's agents are pushed at 0 before they have run (their panels and increase() see the first run)."""
    with Gateway() as gw:
        monkeypatch.setenv("AGENT_PIPELINE_PUSHGATEWAY_URL", gw.url)
        defs = build_defs(*loaded())
        result = defs.get_job_def("publish_metrics").execute_in_process()
    assert result.success
    body = gw.requests[-1]["body"].decode()
    for agent in ("momentum", "cross_venue_arb", "regime_watcher"):
        assert f'agent_runs_total{{agent="{agent}"}} 0.0' in body, agent
