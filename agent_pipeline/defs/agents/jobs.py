"""Jobs that run agents: ``agent_runs`` runs every registered agent once; ``agent__<name>`` runs one agent
(what a quota-driven scheduler launches, and a per-agent run history in the UI).

Downstream of every agent op ``run_<name>`` sits ``execute_<name>``: the agent's trade proposals go through the
one execution layer (gate -> paper broker, ``agent_pipeline.trading.execution``) and nowhere else."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from agent_pipeline.agents import LoadedAgent
from agent_pipeline.defs.agents.ops import build_agent_op
from agent_pipeline.defs.resources import shared_resources
from agent_pipeline.defs.trading.ops import build_execution_op
from agent_pipeline.pipeline_settings import Settings

AGENT_RUNS_JOB = "agent_runs"


def agent_job_resources(settings: Settings) -> dict:
    """Op outputs stay in memory: ``execute_<name>`` reads ``run_<name>``'s output in the same process and nothing
    reads either afterwards, so pickling both under DAGSTER_HOME/storage for every run only filled the disk. A job
    that names its io_manager is no longer bound by Definitions, so the location's shared resources (from the same
    settings) are bound here too (an execution's own ``resources=`` still override them)."""
    return {**shared_resources(settings), "io_manager": dg.mem_io_manager}


def single_agent_job_name(agent_name: str) -> str:
    return f"agent__{agent_name}"


def build_agent_jobs(registry: Mapping[str, LoadedAgent], settings: Settings) -> list[dg.JobDefinition]:
    """The jobs of ``registry``'s agents; their execution ops gate orders with ``settings``' guardrails."""
    ops = {name: build_agent_op(loaded) for name, loaded in registry.items()}
    executions = {name: build_execution_op(loaded, settings.guardrails, settings.execution,
                                           allocation_period_sec=settings.allocation.period_minutes * 60.0)
                  for name, loaded in registry.items()}
    resources = agent_job_resources(settings)

    @dg.job(
        name=AGENT_RUNS_JOB,
        description="Run every registered agent once against the market; each run lands as an agent_events row and "
                    "its trade proposals go through the execution gate to the paper broker.",
        executor_def=dg.in_process_executor,
        resource_defs=resources,
        tags={"domain": "agents"},
    )
    def agent_runs():
        for name, op_def in ops.items():
            executions[name](op_def())

    return [agent_runs] + [_single_agent_job(name, op_def, executions[name], resources)
                           for name, op_def in ops.items()]


def _single_agent_job(name: str, op_def: dg.OpDefinition, execution_op: dg.OpDefinition,
                      resources: dict) -> dg.JobDefinition:
    @dg.job(
        name=single_agent_job_name(name),
        description=f"Run agent `{name}` once (what the quota scheduler launches) and execute its trade proposals "
                    "through the gate.",
        executor_def=dg.in_process_executor,
        resource_defs=resources,
        tags={"domain": "agents", "agent": name},
    )
    def one_agent():
        execution_op(op_def())

    return one_agent
