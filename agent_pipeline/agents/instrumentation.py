"""Wrap one agent run and turn whatever happens into exactly one event.

Latency is wall-clock around ``run``; a raise, a timeout, an output of the wrong shape, a NaN profit or a bad cost
all become an error event with a message that says which, never a silent zero. A successful run is priced with
the capital-weighted reward under its strategy's risk budget.

Every run leaves one event whatever happens: any ``BaseException`` (``SystemExit``, ``KeyboardInterrupt``,
``GeneratorExit``, an exception whose ``__str__`` and ``__repr__`` raise, a class with an unprintable name), an
output whose ``__eq__``/``__len__``/``__iter__`` raise, a context (market) that cannot be built. ``run_and_record``
hands the event to the caller's ``record`` (the store) first; only then do ``KeyboardInterrupt`` and
``SystemExit`` propagate, and any other non-``Exception`` raised in the pipeline's own thread (where an interrupt
meant for the pipeline, such as Dagster's run termination, arrives). Everything else is a failed run, not a crash
of the pipeline.

A Python thread cannot be killed: an agent still running at its timeout (or when an interrupt arrives) is left
behind as a daemon thread, and its event says so. At most ``MAX_ABANDONED_PER_AGENT`` such threads per agent
and ``MAX_ABANDONED_THREADS`` in all may pile up in one process; beyond that a new run is refused with an error
event saying why, instead of starting another thread.

Each run gets its own deep copy of ``ctx.params``: an agent that mutates it changes neither the next run nor the
registry's spec (nor, so, the strategy's fingerprint).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent_pipeline import output_bounds
from agent_pipeline.agents.protocol import AgentContext, AgentResult
from agent_pipeline.agents.registry import LoadedAgent
from agent_pipeline.numbers import finite_number, real_number
from agent_pipeline.reward import RewardConfig, score_output
from agent_pipeline.safe_text import utf8_safe
from agent_pipeline.store.events import AgentEvent

MAX_ABANDONED_PER_AGENT = 2
MAX_ABANDONED_THREADS = 16
_TYPE_CHARS = 200
_MESSAGE_CHARS = 2_000


class AgentOutputError(ValueError):
    """The agent returned something the pipeline cannot score or store."""


class AgentTimeout(TimeoutError):
    """The agent did not finish within its configured timeout; its thread was left running."""


class AgentThreadLimit(RuntimeError):
    """The run was refused: too many of this process's earlier agent threads are still running."""


def _number_or_error(item: dict, key: str, where: str) -> None:
    """The gate's meaning of a number (``agent_pipeline.numbers``): numpy, Decimal and Fraction are numbers, a
    bool (Python's or numpy's) is not, and the value must be finite."""
    if key not in item:
        return
    value = item[key]
    if real_number(value) is None:
        raise AgentOutputError(f"{where}[{key!r}] must be a number, got {type(value).__name__} {value!r:.40}")
    if finite_number(value) is None:
        raise AgentOutputError(f"{where}[{key!r}] must be finite, got {value!r:.40}")


def _json_default(value: Any) -> Any:
    """How an output's values that JSON does not know are stored: real numbers as floats (so a numpy or
    Decimal notional stays a number for the gate; a NaN among them then fails ``allow_nan=False``), the rest
    as text."""
    number = real_number(value)
    return number if number is not None else str(value)


def _within_output_bounds(output: Any, text: str | None = None) -> None:
    """Raise AgentOutputError naming the cap when the output is too deep (or, given its JSON text, too large)."""
    problem = output_bounds.value_problem(output) if text is None else output_bounds.size_problem(text)
    if problem is not None:
        raise AgentOutputError(problem)


def normalize_result(raw: Any) -> tuple[list[dict[str, Any]], float | None]:
    """Check an agent's return value and split it into (output, cost_usd)."""
    if isinstance(raw, AgentResult):
        output, cost = raw.output, raw.cost_usd
    else:
        output, cost = raw, None
    if not isinstance(output, list):
        raise AgentOutputError(f"output must be a list of dicts, got {type(output).__name__}")
    _within_output_bounds(output)  # first: the checks below walk, print and serialise the output
    for i, item in enumerate(output):
        if not isinstance(item, dict):
            raise AgentOutputError(f"output[{i}] must be a dict, got {type(item).__name__}")
        for key in ("profit_pct", "notional_usd", "expected_edge_bps", "confidence", "data_age_sec"):
            _number_or_error(item, key, f"output[{i}]")
    try:
        text = json.dumps(output, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise AgentOutputError(f"output is not JSON-serialisable: {exc}") from exc
    _within_output_bounds(output, text)
    if cost is not None:
        number = finite_number(cost)
        if number is None or number < 0:
            raise AgentOutputError(f"cost_usd must be a finite non-negative number or None, got {cost!r}")
        cost = number
    return output, cost


# -- threads left behind ---------------------------------------------------------------------------------------
_abandoned_lock = threading.Lock()
_abandoned: list[tuple[str, threading.Event]] = []  # (agent, set when its call returns)


def abandoned_threads(agent_name: str | None = None) -> int:
    """Agent threads of this process still running after their run ended (of one agent, or of all)."""
    with _abandoned_lock:
        _abandoned[:] = [(name, done) for name, done in _abandoned if not done.is_set()]
        return sum(1 for name, _ in _abandoned if agent_name is None or name == agent_name)


def _abandon(agent_name: str, done: threading.Event) -> None:
    with _abandoned_lock:
        _abandoned.append((agent_name, done))


def _check_thread_room(agent_name: str) -> None:
    mine, everyone = abandoned_threads(agent_name), abandoned_threads()
    if mine >= MAX_ABANDONED_PER_AGENT or everyone >= MAX_ABANDONED_THREADS:
        raise AgentThreadLimit(
            f"agent {agent_name!r} not started: {mine} of its earlier runs' threads (and {everyone} agent threads "
            f"in all) are still running in this process after their run ended; the limit is "
            f"{MAX_ABANDONED_PER_AGENT} per agent and {MAX_ABANDONED_THREADS} in all, so a hung agent cannot "
            "pile up threads. Fix or disable the agent; its threads end when they return or the process exits.")


def _left_running(agent_name: str) -> str:
    return (f"its thread is still running and was left behind ({abandoned_threads(agent_name)} of this agent's "
            f"threads in this process, at most {MAX_ABANDONED_PER_AGENT})")


class _Attempt:
    """The worker thread of one run and what it produced; ``thread_running`` once it was left behind."""

    def __init__(self) -> None:
        self.worker: threading.Thread | None = None
        self.done = threading.Event()
        self.thread_running = False
        self.box: dict[str, Any] = {}


def _call_with_timeout(agent: LoadedAgent, ctx: AgentContext, attempt: _Attempt) -> tuple[Any, BaseException | None]:
    """Run the agent in its own thread; return (result, what it raised). Raises only on timeout, refusal or an
    interrupt delivered to this thread while it waits.

    It waits on an Event, not ``Thread.join``: a Ctrl-C during ``join`` makes Python 3.11 mark a thread that is
    still running as stopped, and the event would then wrongly say it finished.
    """
    timeout = agent.spec.timeout_sec
    _check_thread_room(agent.name)
    box, done = attempt.box, attempt.done

    def target() -> None:
        try:
            box["result"] = agent.agent.run(ctx)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            box["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=target, name=f"agent-{agent.name}", daemon=True)
    attempt.worker = worker
    worker.start()
    try:
        finished = done.wait(timeout)
    except BaseException:
        _leave_behind(agent, attempt)
        raise
    if not finished:
        _leave_behind(agent, attempt)
        raise AgentTimeout(f"agent {agent.name!r} did not finish within {timeout:g} s; {_left_running(agent.name)}")
    return box.get("result"), box.get("error")


def _leave_behind(agent: LoadedAgent, attempt: _Attempt) -> None:
    if attempt.worker is not None and not attempt.done.is_set():
        _abandon(agent.name, attempt.done)
        attempt.thread_running = True


# -- one run, one event -----------------------------------------------------------------------------------------
def _max_data_age(output: list[dict[str, Any]]) -> float | None:
    ages = [age for o in output if (age := finite_number(o.get("data_age_sec"))) is not None]
    return max(ages) if ages else None


def _detached(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plain JSON data (the stored form), so nothing downstream calls back into the agent's objects; text
    that is not valid Unicode (a lone surrogate such as ``"\\ud800"``) is escaped, so the event can be written."""
    return utf8_safe(json.loads(json.dumps(output, allow_nan=False, default=_json_default)))



def _must_propagate(error: BaseException, in_agent_thread: bool) -> bool:
    """Ctrl-C and SystemExit always; any other non-Exception only when raised in the pipeline's own thread, where
    it may be an interrupt meant for the pipeline (Dagster's run termination). In the agent's thread it is the
    agent's, and a failed run."""
    if isinstance(error, (KeyboardInterrupt, SystemExit)):
        return True
    return not in_agent_thread and not isinstance(error, Exception)


@dataclass(frozen=True)
class AgentRun:
    """One run's stored event, and whether the agent's thread was still running when it was written."""

    event: AgentEvent
    thread_running: bool = False


Prepare = Callable[[], tuple[AgentContext, RewardConfig]]


def run_and_record(agent: LoadedAgent, prepare: Prepare, *, run_id: str,
                   record: Callable[[AgentEvent], None] | None = None, source: str = "dagster") -> AgentRun:
    """Build the run's context (``prepare``), run the agent once, hand the one event to ``record``, then re-raise
    what must propagate (see the module docstring). ``prepare`` failing is a failed run too."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    attempt = _Attempt()
    error: BaseException | None = None
    in_agent_thread = False
    note = ""
    latency: float | None = None
    event: AgentEvent | None = None
    try:
        ctx, reward_config = prepare()
        ctx = dataclasses.replace(ctx, params=copy.deepcopy(dict(ctx.params)))  # this run's own copy
        run_id = ctx.run_id
        started, t0 = datetime.now(UTC), time.perf_counter()
        try:
            raw, error = _call_with_timeout(agent, ctx, attempt)
            in_agent_thread = error is not None
        except Exception as exc:  # noqa: BLE001 - timeout, refusal, a thread that cannot start
            error = exc
        except BaseException as exc:  # noqa: BLE001 - delivered while waiting: Ctrl-C, run termination
            error = exc
            note = "interrupted while waiting for the agent" + (
                f"; {_left_running(agent.name)}" if attempt.thread_running else "")
        latency = time.perf_counter() - t0  # wall-clock around run (or until it was given up)
        if error is None:
            output, cost = normalize_result(raw)
            output = _detached(output)
            reward, capital, max_loss = score_output(agent.name, agent.strategy, output, reward_config,
                                                      cost_usd=cost)
            event = AgentEvent(run_id=run_id, agent=agent.name, strategy=agent.strategy, kind=agent.kind,
                               started_at=started, latency_seconds=latency, source=source,
                               cost_usd=cost, reward=reward, output=output, capital_usd=capital,
                               max_loss_usd=max_loss, data_age_sec=_max_data_age(output))
    except BaseException as exc:  # noqa: BLE001 - prepare, or the agent's returned objects misbehaving
        error = exc
    if error is not None:
        latency = time.perf_counter() - t0 if latency is None else latency
        event = error_event(agent, run_id, error, started, latency, source=source, note=note)
    propagate = None if error is None else (error if _must_propagate(error, in_agent_thread) else None)
    if record is not None:
        try:
            event = _record_or_fallback(record, event, agent, run_id, started, latency, source)
        except BaseException as exc:
            if propagate is None:
                raise
            raise propagate from exc
    if propagate is not None:
        raise propagate
    return AgentRun(event, attempt.thread_running)


def _record_or_fallback(record: Callable[[AgentEvent], None], event: AgentEvent, agent: LoadedAgent, run_id: str,
                        started: datetime, latency: float | None, source: str) -> AgentEvent:
    """Store the event; if the store refuses it (text it cannot encode, a value it cannot convert), store a
    failed-run event in its place that says why, without the output: every run leaves an event. A store that
    refuses that too (it is down) raises."""
    try:
        record(event)
        return event
    except Exception as exc:  # noqa: BLE001 - the event's content was refused: the fallback says why
        refused = exc
    fallback = error_event(agent, run_id, refused, started, latency or 0.0, source=source,
                           note="the run's own event could not be stored"
                                + (f"; the run had failed with {event.error}" if event.error else ""))
    fallback = dataclasses.replace(fallback, error=utf8_safe(fallback.error))
    record(fallback)
    return fallback


def run_instrumented(agent: LoadedAgent, ctx: AgentContext, reward_config: RewardConfig,
                     *, source: str = "dagster", record: Callable[[AgentEvent], None] | None = None) -> AgentEvent:
    """Run the agent once and return its event; raises only what must propagate, after ``record`` got the event."""
    return run_and_record(agent, lambda: (ctx, reward_config), run_id=ctx.run_id, record=record,
                          source=source).event


# -- error text that cannot fail ---------------------------------------------------------------------------------
def _printable(text: str, limit: int) -> str:
    """One line of printable text, at most ``limit`` characters."""
    cut = text[:limit + 1]
    clean = " ".join("".join(ch if ch.isprintable() else " " for ch in cut).split())
    return clean[:limit - 1] + "\u2026" if len(cut) > limit else clean


def error_type_name(error: BaseException) -> str:
    """The exception class's own name (even under a metaclass that lies about it), made printable."""
    try:
        name = type.__dict__["__name__"].__get__(type(error))
    except Exception:  # noqa: BLE001 - a name is only for the message
        name = ""
    return _printable(name, _TYPE_CHARS) or "UnnamedException"


def error_message(error: BaseException) -> str:
    """``str(error)``, else ``repr(error)``, else a placeholder: rendering an agent's exception never raises."""
    for render in (str, repr):
        try:
            text = render(error)
            return _printable(str.__str__(text), _MESSAGE_CHARS)  # an exact str, whatever subclass came back
        except BaseException:  # noqa: BLE001, S112 - the agent's __str__/__repr__ may raise anything
            continue
    return "<message unavailable: the exception's __str__ and __repr__ raise>"


def error_event(agent: LoadedAgent, run_id: str, error: BaseException, started: datetime, latency: float,
                *, source: str = "dagster", note: str = "") -> AgentEvent:
    """The event of a failed run: the error's type and message (plus ``note``), no reward, no output."""
    name = error_type_name(error)
    message = error_message(error)
    text = f"{name}: {message}" if message else name
    if note:
        text = f"{text} ({note})"
    return AgentEvent(run_id=run_id, agent=agent.spec.name, strategy=agent.strategy,
                      kind=agent.kind, started_at=started, latency_seconds=latency, source=source,
                      reward=None, error=text, error_type=name)

