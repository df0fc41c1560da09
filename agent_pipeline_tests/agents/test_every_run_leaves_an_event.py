"""Every run leaves exactly one readable error event whatever the agent raises or returns; KeyboardInterrupt and
SystemExit propagate only after the event was handed to ``record``."""

import math
from datetime import UTC, datetime

import pytest

from agent_pipeline.agents import AgentContext, AgentResult, AgentSpec
from agent_pipeline.agents.instrumentation import run_and_record, run_instrumented
from agent_pipeline.agents.registry import FunctionAgent, LoadedAgent
from agent_pipeline.market import SimulatedMarket
from agent_pipeline.reward import RewardConfig

CTX = AgentContext(now=datetime(2026, 3, 2, 12, tzinfo=UTC), market=SimulatedMarket(fault_rate=0), run_id="r1")


def agent(fn, name="user", timeout=5.0) -> LoadedAgent:
    return LoadedAgent(AgentSpec(name=name, ref="tests:fn", timeout_sec=timeout), FunctionAgent(name, "signal", name, fn))


def raising(exc):
    def fn(ctx):
        raise exc
    return fn


def run(fn, **kw):
    """Run through ``run_instrumented`` with a recorder; return (event or None, recorded events, what escaped)."""
    recorded = []
    try:
        event = run_instrumented(agent(fn, **kw), CTX, RewardConfig(), record=recorded.append)
    except BaseException as exc:  # noqa: BLE001 - the test inspects what propagated
        return None, recorded, exc
    return event, recorded, None


def readable(text):
    return isinstance(text, str) and text and text.isprintable() and len(text) <= 2_300


class StrRaises(Exception):
    def __str__(self):
        raise RuntimeError("__str__ is broken")


class BothRaise(Exception):
    def __str__(self):
        raise ValueError("no str")

    def __repr__(self):
        raise SystemExit("no repr either")


class Sneaky(str):
    def __getitem__(self, item):
        raise RuntimeError("slicing a str subclass")


class StrReturnsSubclass(Exception):
    def __str__(self):
        return Sneaky("a message in disguise")


class LyingMeta(type):
    @property
    def __name__(cls):
        raise RuntimeError("no name for you")


class MetaNamed(Exception, metaclass=LyingMeta):
    pass


class OwnBase(BaseException):
    pass


WEIRD_NAME = type("Bad\nName\x1b[31m\u200b\u202e" + "x" * 5_000, (Exception,), {})
NO_NAME = type("", (Exception,), {})


@pytest.mark.parametrize("exc, error_type, text", [
    (GeneratorExit(), "GeneratorExit", "GeneratorExit"),
    (OwnBase("custom base"), "OwnBase", "OwnBase: custom base"),
    (StrRaises("hidden"), "StrRaises", "StrRaises: StrRaises('hidden')"),
    (BothRaise(), "BothRaise", "__str__ and __repr__ raise"),
    (StrReturnsSubclass(), "StrReturnsSubclass", "a message in disguise"),
    (MetaNamed("lying metaclass"), "MetaNamed", "lying metaclass"),
    (WEIRD_NAME("odd"), "Bad Name [31m", "odd"),
    (NO_NAME("anonymous"), "UnnamedException", "anonymous"),
    (RuntimeError("y" * 1_000_000), "RuntimeError", "yyy"),
    (RuntimeError("line one\nline two\x00"), "RuntimeError", "line one line two"),
], ids=["GeneratorExit", "own-BaseException", "str-raises", "str-and-repr-raise", "str-returns-subclass",
        "metaclass-name-raises", "unprintable-long-name", "empty-name", "huge-message", "multiline-message"])
def test_anything_raised_becomes_one_readable_error_event(exc, error_type, text):
    event, recorded, escaped = run(raising(exc))
    assert escaped is None and recorded == [event]
    assert not event.ok and event.reward is None and event.output is None
    assert event.error_type.startswith(error_type) and readable(event.error_type) and len(event.error_type) <= 200
    assert text in event.error and readable(event.error)
    assert math.isfinite(event.latency_seconds)


@pytest.mark.parametrize("exc, error_type, text", [
    (SystemExit(3), "SystemExit", "SystemExit: 3"),
    (KeyboardInterrupt(), "KeyboardInterrupt", "KeyboardInterrupt"),
], ids=["SystemExit", "KeyboardInterrupt"])
def test_interrupts_and_exits_propagate_after_their_event_is_recorded(exc, error_type, text):
    event, recorded, escaped = run(raising(exc))
    assert event is None and escaped is exc  # propagated, unchanged
    (stored,) = recorded
    assert stored.error_type == error_type and stored.error == text and stored.reward is None


class IterRaises(list):
    def __iter__(self):
        raise RuntimeError("__iter__ is broken")


class LenRaises(list):
    def __len__(self):
        raise RuntimeError("__len__ is broken")

    def __eq__(self, other):
        raise RuntimeError("__eq__ is broken")

    __hash__ = None


class IterExits(list):
    def __iter__(self):
        raise SystemExit("exit from __iter__")


class OnceIterable(list):
    """Iterates once, then breaks."""

    def __init__(self, *args):
        super().__init__(*args)
        self.calls = 0

    def __iter__(self):
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("second iteration")
        return super().__iter__()


class GetRaises(dict):
    def get(self, *args):
        raise RuntimeError("get is broken")


class ItemsRaise(dict):
    def items(self):
        raise RuntimeError("items is broken")

    def keys(self):
        raise RuntimeError("keys is broken")


class OutputProperty(AgentResult):
    @property
    def output(self):
        raise RuntimeError("output property is broken")


@pytest.mark.parametrize("returned, text", [
    (IterRaises([{"profit_pct": 1.0}]), "__iter__ is broken"),
    ([ItemsRaise(profit_pct=1.0)], "items is broken"),
    (OutputProperty.__new__(OutputProperty), "output property is broken"),
], ids=["iter-raises", "items-raise", "output-property-raises"])
def test_returned_objects_that_misbehave_become_error_events(returned, text):
    event, recorded, escaped = run(lambda ctx: returned)
    assert escaped is None and recorded == [event] and not event.ok
    assert text in event.error and readable(event.error)


@pytest.mark.parametrize("make", [
    lambda: LenRaises([{"profit_pct": 0.5, "data_age_sec": 1.0}]),
    lambda: [GetRaises(profit_pct=0.5, data_age_sec=1.0)],
], ids=["len-eq-raise", "get-raises"])
def test_a_valid_output_is_scored_from_plain_data_not_the_agents_objects(make):
    event, recorded, escaped = run(lambda ctx: make())
    assert escaped is None and recorded == [event]
    assert event.ok, event.error
    assert event.output == [{"profit_pct": 0.5, "data_age_sec": 1.0}] and type(event.output) is list
    assert math.isfinite(event.reward) and event.data_age_sec == 1.0


def test_an_output_that_breaks_after_being_checked_still_leaves_exactly_one_event():
    event, recorded, escaped = run(lambda ctx: OnceIterable([{"profit_pct": 0.5}]))
    assert escaped is None and recorded == [event]
    assert event.ok or "second iteration" in event.error


def test_an_output_whose_iteration_exits_is_recorded_then_propagates():
    event, recorded, escaped = run(lambda ctx: IterExits([{"profit_pct": 1.0}]))
    assert event is None and isinstance(escaped, SystemExit)
    (stored,) = recorded
    assert stored.error == "SystemExit: exit from __iter__"


def test_a_context_that_cannot_be_built_is_an_event_and_its_interrupt_propagates():
    def prepare():
        raise KeyboardInterrupt

    recorded = []
    with pytest.raises(KeyboardInterrupt):
        run_and_record(agent(lambda ctx: []), prepare, run_id="r9", record=recorded.append)
    (stored,) = recorded
    assert stored.run_id == "r9" and stored.error_type == "KeyboardInterrupt"

    def broken_market():
        raise OSError("venue config unreadable")

    outcome = run_and_record(agent(lambda ctx: []), broken_market, run_id="r10", record=recorded.append)
    assert recorded[-1] is outcome.event and "venue config unreadable" in outcome.event.error


def test_an_agent_that_breaks_its_own_labels_still_gets_an_event():
    def broken(self):
        raise RuntimeError("no strategy")

    class Shifty:
        name, kind, strategy = "shifty", "signal", "s"

        def run(self, ctx):
            type(self).strategy = property(broken)
            return [{"profit_pct": 1.0}]

    loaded = LoadedAgent(AgentSpec(name="shifty", ref="tests:Shifty", strategy="s_spec"), Shifty())
    recorded = []
    event = run_instrumented(loaded, CTX, RewardConfig(), record=recorded.append)
    # the labels were fixed when the agent was loaded: breaking them while running changes nothing
    assert recorded == [event] and event.ok and event.strategy == "s_spec" and event.kind == "signal"


# -- hidden case 6 of issue 9: text the store cannot encode ------------------------------------------------------
def _stored(store):
    with store.connect() as conn:
        return conn.execute("SELECT error, output FROM agent_events").fetchall()


@pytest.mark.parametrize("output", [
    [{"profit_pct": 0.5, "note": "\ud800"}],
    [{"profit_pct": 0.5, "\udfff": 1}],
    [{"profit_pct": 0.5, "symbol": "BTC\udc80USD", "nested": ["a\ud83d"]}],
])
def test_lone_surrogates_in_an_output_still_leave_the_event(store, output):
    from agent_pipeline.store import append_event

    event = run_instrumented(agent(lambda ctx: output), CTX, RewardConfig(),
                             record=lambda e: append_event(store, e))
    assert event.ok, event.error
    (error, stored), = _stored(store)
    assert error is None and "\\ud" in stored.lower()  # escaped, not lost


def test_lone_surrogates_in_an_error_still_leave_the_event(store):
    from agent_pipeline.store import append_event

    def fails(ctx):
        raise RuntimeError("broken \ud800 text")

    event = run_instrumented(agent(fails), CTX, RewardConfig(), record=lambda e: append_event(store, e))
    (error, _), = _stored(store)
    assert not event.ok and error.startswith("RuntimeError: broken")


def test_an_event_the_store_refuses_is_replaced_by_a_failed_run_event_saying_why():
    recorded = []

    def picky(event):
        if event.output:
            raise ValueError("cannot convert this output")
        recorded.append(event)

    event = run_instrumented(agent(lambda ctx: [{"profit_pct": 0.5}]), CTX, RewardConfig(), record=picky)
    assert recorded == [event] and not event.ok
    assert "cannot convert this output" in event.error and "could not be stored" in event.error
