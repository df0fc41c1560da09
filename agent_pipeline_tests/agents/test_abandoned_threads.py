"""An agent still running at its timeout is left behind and its event says so; the threads left behind are bounded
per agent and per process, and a run past the bound is refused with an event instead of starting a thread."""

import os
import signal
import threading
import time
from datetime import UTC, datetime

import pytest

from agent_pipeline.agents import AgentContext, AgentSpec, instrumentation, run_instrumented
from agent_pipeline.agents.registry import FunctionAgent, LoadedAgent
from agent_pipeline.market import SimulatedMarket
from agent_pipeline.reward import RewardConfig

CTX = AgentContext(now=datetime(2026, 3, 2, 12, tzinfo=UTC), market=SimulatedMarket(fault_rate=0), run_id="r1")


def sleeper(name, release: threading.Event, timeout=0.1) -> LoadedAgent:
    def sleep_until_released(ctx):
        release.wait(20)  # a real blocking agent (a hung HTTP call, a stuck model)
        return []

    return LoadedAgent(AgentSpec(name=name, ref="tests:sleep", timeout_sec=timeout),
                       FunctionAgent(name, "signal", name, sleep_until_released))


def threads_of(name):
    return [t for t in threading.enumerate() if t.name == f"agent-{name}" and t.is_alive()]


@pytest.fixture
def release():
    event = threading.Event()
    yield event
    event.set()  # let every thread this test left behind finish
    for t in threading.enumerate():
        if t.name.startswith("agent-hang"):
            t.join(5)


def test_a_timed_out_agent_is_reported_running_and_its_threads_are_bounded(release):
    agent = sleeper("hang_a", release)
    for n in (1, 2):
        event = run_instrumented(agent, CTX, RewardConfig())
        assert event.error_type == "AgentTimeout" and "0.1 s" in event.error
        assert "thread is still running" in event.error and f"({n} of this agent's threads" in event.error
        assert len(threads_of("hang_a")) == n
    t0 = time.perf_counter()
    refused = run_instrumented(agent, CTX, RewardConfig())
    assert time.perf_counter() - t0 < 0.1  # refused at once: no new thread, no wait for a timeout
    assert refused.error_type == "AgentThreadLimit" and "not started" in refused.error
    assert "2 of its earlier runs' threads" in refused.error and refused.reward is None
    assert len(threads_of("hang_a")) == 2
    # another agent still runs
    assert run_instrumented(LoadedAgent(AgentSpec(name="fine", ref="tests:fine"),
                                        FunctionAgent("fine", "signal", "fine", lambda ctx: [])),
                            CTX, RewardConfig()).ok
    # once the hung calls return, the agent may run again
    release.set()
    for t in threads_of("hang_a"):
        t.join(5)
    assert instrumentation.abandoned_threads("hang_a") == 0
    assert run_instrumented(agent, CTX, RewardConfig()).ok


def test_the_process_wide_bound_refuses_any_agent(release, monkeypatch):
    monkeypatch.setattr(instrumentation, "MAX_ABANDONED_THREADS", instrumentation.abandoned_threads() + 1)
    assert run_instrumented(sleeper("hang_b", release), CTX, RewardConfig()).error_type == "AgentTimeout"
    refused = run_instrumented(sleeper("hang_c", release), CTX, RewardConfig())
    assert refused.error_type == "AgentThreadLimit" and "in all" in refused.error
    assert threads_of("hang_c") == []


def test_the_run_says_its_thread_is_still_running(release):
    recorded = []
    run = instrumentation.run_and_record(sleeper("hang_d", release), lambda: (CTX, RewardConfig()), run_id="r1",
                                         record=recorded.append)
    assert run.thread_running is True and recorded == [run.event]
    release.set()
    for t in threads_of("hang_d"):
        t.join(5)
    done = instrumentation.run_and_record(sleeper("hang_d", release), lambda: (CTX, RewardConfig()), run_id="r2")
    assert done.event.ok and done.thread_running is False


class Terminated(BaseException):
    """What an orchestrator's signal handler raises in the main thread (as Dagster does on run termination)."""


def test_an_interrupt_while_waiting_is_recorded_with_the_thread_left_running_then_propagates(release):
    def on_signal(signum, frame):
        raise Terminated("run terminated")

    previous = signal.signal(signal.SIGUSR1, on_signal)
    timer = threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGUSR1))
    recorded = []
    try:
        timer.start()
        with pytest.raises(Terminated):
            instrumentation.run_and_record(sleeper("hang_e", release, timeout=10), lambda: (CTX, RewardConfig()),
                                           run_id="r1", record=recorded.append)
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)
    (event,) = recorded
    assert event.error_type == "Terminated" and event.error.startswith("Terminated: run terminated")
    assert "interrupted while waiting for the agent" in event.error and "still running" in event.error
    assert event.latency_seconds < 5
    assert instrumentation.abandoned_threads("hang_e") == 1
