"""The bootstrap schedule runs every agent until the allocator has decided quotas, then steps aside."""

from datetime import UTC, datetime

import dagster as dg

from agent_pipeline.defs.agents.definitions import agent_runs_schedule
from agent_pipeline.defs.resources import StoreResource


def evaluate(store_resource):
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 2, 12, 5, tzinfo=UTC),
                                        resources={"store": store_resource})
    return agent_runs_schedule(context)


def test_runs_everything_on_a_fresh_install(pipeline_home):
    result = evaluate(StoreResource())
    assert isinstance(result, dg.RunRequest) and result.run_key == "bootstrap:20260302T1205"


def test_steps_aside_once_quotas_are_in_force(store):
    with store.connect() as conn:
        conn.execute("CREATE TABLE allocator_quotas (period_start TIMESTAMPTZ, agent VARCHAR, quota INTEGER)")
        conn.execute("INSERT INTO allocator_quotas VALUES ('2026-03-02 12:00:00+00', 'momentum', 3)")
    result = evaluate(StoreResource())
    assert isinstance(result, dg.SkipReason) and "quotas in force" in result.skip_message


def test_skips_while_the_store_is_held(store):
    with store.connect():
        result = evaluate(StoreResource())
    assert isinstance(result, dg.SkipReason) and "store busy" in result.skip_message
