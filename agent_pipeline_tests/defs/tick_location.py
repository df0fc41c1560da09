"""The agent_tick job as a reconstructable target: execute_job runs it with its own (threaded) executor, where
execute_in_process would swap in Dagster's sequential one. Built on call, from the test's AGENT_PIPELINE_HOME;
``home`` names it in the target so Dagster's cache of the last reconstructed job never hands one test another's."""

import os

import dagster as dg


def tick_job(home: str):
    import agent_pipeline.defs.agents as agents_defs
    from agent_pipeline_tests.location import domain_defs

    assert os.environ["AGENT_PIPELINE_HOME"] == home, "the job is built for the running test's home"
    return domain_defs(agents_defs).resolve_job_def("agent_tick")


def reconstructable_tick_job():
    return dg.build_reconstructable_job(__name__, "tick_job",
                                        reconstructable_kwargs={"home": os.environ["AGENT_PIPELINE_HOME"]})
