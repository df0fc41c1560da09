"""A Dagster executor that runs a run's steps on threads of the run's own process.

Dagster's in-process executor runs one step at a time, and the multiprocess executor pays a process (and a code
load) per step: either way an agent slot that waits 0.3 s on a model costs its tick 0.3 s, or a process per slot
costs more CPU than the agent. The quota tick carries every due slot of a tick in one run, so its steps run here:
each ready step on a worker thread of one pool, sharing the run's resources and in-memory outputs, with Dagster's
own scheduling of ready steps (``ActiveExecution``): ``max_concurrent`` steps at once and its
``tag_concurrency_limits`` (the per-agent limits: every slot op carries its ``agent`` tag).

Each step runs exactly as the in-process executor runs it (``dagster_event_sequence_for_step``: the same events,
logs, retries by retry policy, hooks); only the loop that hands out steps and collects their events is ours, and
it runs in the run's main thread, which alone talks to ``ActiveExecution``. An interrupt (run termination) stops
handing out steps; steps already running finish (an agent is bounded by its own timeout) and the run then fails.

It builds on Dagster internals (``dagster._core``) of the pinned release; a test runs a tick through it.
"""

import os
import queue
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.compute_logs import create_compute_log_file_key
from dagster._core.execution.context.system import PlanExecutionContext, PlanOrchestrationContext
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.execute_plan import _trigger_hook, dagster_event_sequence_for_step
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode
from dagster._core.execution.step_dependency_config import StepDependencyConfig
from dagster._core.executor.base import Executor

_POLL_S = 0.05


class ThreadedExecutor(Executor):
    """Steps of one run on a pool of ``max_concurrent`` threads, under Dagster's tag concurrency limits."""

    def __init__(self, max_concurrent: int, tag_concurrency_limits: list[dict[str, Any]] | None = None,
                 step_dependency_config: StepDependencyConfig | None = None):
        self._max_concurrent = max_concurrent
        self._tag_concurrency_limits = tag_concurrency_limits or []
        self._step_dependency_config = step_dependency_config or StepDependencyConfig.default()

    @property
    def retries(self) -> RetryMode:
        return RetryMode.ENABLED  # op retry policies apply, as in process

    @property
    def step_dependency_config(self) -> StepDependencyConfig:
        return self._step_dependency_config

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        yield DagsterEvent.engine_event(
            plan_context, f"Executing steps on up to {self._max_concurrent} threads in process (pid: {os.getpid()})",
            event_specific_data=EngineEventData.in_process(os.getpid(), execution_plan.step_keys_to_execute))

        def iterator(job_context: PlanExecutionContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
            return self._threaded_iterator(job_context, execution_plan)

        yield from iter(ExecuteRunWithPlanIterable(
            execution_plan=plan_context.execution_plan,
            iterator=iterator,
            execution_context_manager=PlanExecutionContextManager(
                job=plan_context.job, retry_mode=plan_context.retry_mode,
                execution_plan=plan_context.execution_plan, run_config=plan_context.run_config,
                dagster_run=plan_context.dagster_run, instance=plan_context.instance,
                raise_on_error=plan_context.raise_on_error, output_capture=plan_context.output_capture,
                step_dependency_config=self.step_dependency_config),
        ))

    def _threaded_iterator(self, job_context: PlanExecutionContext, plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        compute_log_manager = job_context.instance.compute_log_manager
        step_keys = [step.key for step in plan.get_steps_to_execute_in_topo_order()]
        done: queue.Queue = queue.Queue()
        running: dict[str, tuple[Any, list[DagsterEvent]]] = {}
        with ExitStack() as stack:
            concurrency = stack.enter_context(InstanceConcurrencyContext(job_context.instance,
                                                                         job_context.dagster_run))
            active = stack.enter_context(ActiveExecution(
                plan, retry_mode=job_context.retry_mode, max_concurrent=self._max_concurrent,
                tag_concurrency_limits=self._tag_concurrency_limits, instance_concurrency_context=concurrency,
                step_dependency_config=self._step_dependency_config))
            log_key = compute_log_manager.build_log_key_for_run(job_context.run_id, create_compute_log_file_key())
            log_context = stack.enter_context(compute_log_manager.capture_logs(log_key))
            yield DagsterEvent.capture_logs(job_context, step_keys, log_key, log_context)
            pool = stack.enter_context(ThreadPoolExecutor(self._max_concurrent, thread_name_prefix="dagster-step"))
            stopping = False
            while running or (not stopping and not active.is_complete):
                if not stopping and active.check_for_interrupts():
                    stopping = True
                    active.mark_interrupted()
                    yield DagsterEvent.engine_event(
                        job_context, "Received termination: no new steps start; waiting for the running ones",
                        EngineEventData.interrupted(list(running)))
                if not stopping:
                    for step in active.get_steps_to_execute(limit=self._max_concurrent - len(running)):
                        step_context = job_context.for_step(step, active.get_known_state())
                        running[step.key] = (step_context, [])
                        pool.submit(_run_step, step_context, step.key, done)
                    yield from active.concurrency_event_iterator(job_context)
                try:
                    kind, key, item = done.get(timeout=_POLL_S if running else active.sleep_interval() or _POLL_S)
                except queue.Empty:
                    continue
                step_context, events = running[key]
                if kind == "event":
                    events.append(item)
                    yield item
                    active.handle_event(item)
                    continue
                del running[key]
                if kind == "error":  # a framework error outside the step's own error handling: the run fails
                    raise item[1].with_traceback(item[2])
                active.verify_complete(job_context, key)
                for event in active.plan_events_iterator(job_context):
                    events.append(event)
                    yield event
                yield from _trigger_hook(step_context, events)
            if stopping:
                raise dg.DagsterExecutionInterruptedError("run terminated: steps not started were left")


def _run_step(step_context, key: str, done: queue.Queue) -> None:
    try:
        for event in dagster_event_sequence_for_step(step_context):
            done.put(("event", key, event))
    except BaseException:  # noqa: BLE001 - handed to the run's main thread, which raises it
        done.put(("error", key, sys.exc_info()))
        return
    done.put(("done", key, None))


def threaded_executor(max_concurrent: int, tag_concurrency_limits: list[dict[str, Any]]) -> dg.ExecutorDefinition:
    """The executor definition of a job whose steps should overlap in one process (see the module docstring).

    Downstream steps start as soon as the outputs they read exist (``require_upstream_step_success=False``): an op
    that yields its output and then fails (an agent slot whose agent failed) still hands its output on."""
    return dg.ExecutorDefinition(
        name="agent_threads",
        description=f"Steps on up to {max_concurrent} threads of the run's process, with per-tag limits "
                    f"{tag_concurrency_limits}.",
        executor_creation_fn=lambda _init: ThreadedExecutor(
            max_concurrent, tag_concurrency_limits, StepDependencyConfig(require_upstream_step_success=False)),
    )
