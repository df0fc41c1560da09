"""The quota tick: the sensor launches every due slot exactly once across ticks, under run keys a re-evaluation
repeats; the tick run executes one op per slot on threads within the per-agent limits, writes the tick in one
store transaction, and a retried or re-launched tick stores and orders nothing twice."""

import json
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from agent_pipeline.allocation.decision import period_start_for
from agent_pipeline.allocation.policies import Allocation
from agent_pipeline.allocation.tables import ALLOCATION, write_decision
from agent_pipeline.allocation.tick import plan_tick, slot_event_id, slot_key
from agent_pipeline.defs.allocation import scheduler
from agent_pipeline.store import read_events
from agent_pipeline_tests.defs.tick_location import reconstructable_tick_job
from agent_pipeline_tests.location import domain_defs

AGENTS = textwrap.dedent('''
    import threading, time

    lock = threading.Condition()
    active = {}
    peak = {}

    def _overlap(name):
        """Count this agent's runs in flight; wait (bounded) for a peer, so a limit above 1 is reached."""
        with lock:
            active[name] = active.get(name, 0) + 1
            peak[name] = max(peak.get(name, 0), active[name])
            lock.notify_all()
            lock.wait_for(lambda: active[name] >= 2, timeout=2.0)
        time.sleep(0.05)
        with lock:
            active[name] -= 1

    def waiter_a(ctx):
        _overlap("a")
        return []

    def waiter_b(ctx):
        _overlap("b")
        return []

    def buyer(ctx):
        """One honest proposal at the simulated market's touch."""
        quote = next(q for q in ctx.market.quotes(ctx.now) if q.venue == "sim_a" and q.symbol == "BTC-USD")
        return [{"symbol": "BTC-USD", "side": "buy", "venue": "sim_a", "price": quote.ask, "notional_usd": 100.0,
                 "size": 100.0 / quote.ask, "expected_edge_bps": 25.0, "confidence": 0.8, "paper": True}]

    def crasher(ctx):
        import os
        if os.path.exists(ctx.params["flag"]):
            raise SystemExit("the model client called exit()")
        return []
''')


def setup_agents(pipeline_home, tmp_path, monkeypatch, module: str, agents: dict[str, str], extra: str = ""):
    """User agents ``name -> function`` of a fresh module, registered in config.toml with ``extra`` tables."""
    (tmp_path / f"{module}.py").write_text(AGENTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    entries = "".join(f'[[agents]]\nname = "{name}"\nref = "{module}:{fn}"\nstrategy = "{name}"\n'
                      f'params = {{ flag = "{tmp_path / "crash"}" }}\n' for name, fn in agents.items())
    (pipeline_home / "config.toml").write_text(
        "builtin_agents = false\n[market]\nfault_rate = 0.0\n[guardrails]\nrequire_approval = false\n"
        + extra + entries)
    return sys.modules.get(module)


def tick_defs():
    """The agents' and the allocation's definitions, loaded after ``setup_agents`` wrote the config."""
    return domain_defs(__import__("agent_pipeline.defs.agents", fromlist=["x"]),
                       __import__("agent_pipeline.defs.allocation", fromlist=["x"]))


def decide(store, quotas: dict[str, int]) -> datetime:
    """Write ``quotas`` as the decision of this hour's period; returns the period's start."""
    period = period_start_for(datetime.now(UTC), 60)
    with store.connect() as conn:
        ALLOCATION.ensure(store, conn)
        alloc = Allocation(quotas=quotas, scores=dict.fromkeys(quotas, 0.0), policy="test",
                           capital=dict.fromkeys(quotas, 10_000.0))
        write_decision(conn, period, period, alloc, {a: ("signal", a) for a in quotas}, {"seed": None})
    return period


def evaluate(defs, instance, monkeypatch, now, cursor=None):
    monkeypatch.setattr(scheduler, "_now", lambda: now)
    sensor = defs.get_sensor_def("agent_tick_sensor")
    return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources))


def due_tick(defs, instance, monkeypatch, period):
    """The one run request of the tick near the end of ``period``: every slot is due by then."""
    (request,) = evaluate(defs, instance, monkeypatch, period + timedelta(minutes=59)).run_requests
    return request


def slots_of(request) -> list[tuple[str, int]]:
    return [(s["agent"], s["index"]) for s in request.run_config["ops"]["plan_tick"]["config"]["slots"]]


def launch(instance, request, **kwargs):
    return dg.execute_job(reconstructable_tick_job(), instance=instance, run_config=request.run_config,
                          tags=request.tags, **kwargs)


def rows(store, sql):
    with store.connect(read_only=True) as conn:
        return conn.execute(sql).fetchall()


# -- the sensor -------------------------------------------------------------------------------------------------
def test_every_due_slot_is_launched_exactly_once_across_ticks(pipeline_home, tmp_path, monkeypatch, store):
    setup_agents(pipeline_home, tmp_path, monkeypatch, "tick_agents_a", {"a": "waiter_a", "b": "waiter_b",
                                                                         "idle": "waiter_a"})
    defs = tick_defs()
    period = decide(store, {"a": 60, "b": 7, "idle": 0})
    launched, keys, cursor = [], set(), None
    with dg.instance_for_test() as instance:
        now = period
        while now < period + timedelta(minutes=60):
            result = evaluate(defs, instance, monkeypatch, now, cursor)
            # a re-evaluation later in the same 15 s window, with the cursor not advanced (a daemon restart)
            later = period + timedelta(seconds=((now - period).total_seconds() // 15) * 15 + 14.9)
            again = evaluate(defs, instance, monkeypatch, later, cursor)
            if isinstance(result, dg.SensorResult):
                (request,), (repeat,) = result.run_requests, again.run_requests
                assert repeat.run_key == request.run_key and slots_of(repeat) == slots_of(request)
                assert request.run_key not in keys
                assert request.tags["allocation/period"] == period.isoformat()
                keys.add(request.run_key)
                launched += slots_of(request)
                cursor = result.cursor
                # the same window evaluated after the cursor advanced launches nothing more
                assert isinstance(evaluate(defs, instance, monkeypatch, later, cursor),
                                  dg.SkipReason)
            now += timedelta(seconds=47)  # not a multiple of the 15 s window: some windows are never evaluated
    assert sorted(launched) == sorted([("a", i) for i in range(60)] + [("b", i) for i in range(7)])
    assert not any(agent == "idle" for agent, _ in launched)  # quota 0 launches nothing
    assert json.loads(cursor)["launched"] == {"a": 60, "b": 7}


def test_plan_tick_caps_a_tick_earliest_first_and_leaves_the_rest_due():
    period = datetime(2026, 3, 2, 12, tzinfo=UTC)
    first = plan_tick(period, 60, {"a": 60, "b": 60}, {}, period + timedelta(minutes=10), max_slots=5)
    assert [(s.agent, s.index) for s in first.slots] == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2)]
    assert first.launched == {"a": 3, "b": 2} and first.held_back == 17
    second = plan_tick(period, 60, {"a": 60, "b": 60}, first.launched, period + timedelta(minutes=10), max_slots=99)
    assert len(second.slots) == 17 and ("b", 2) == (second.slots[0].agent, second.slots[0].index)
    assert slot_event_id(slot_key("a", period, 0)) == first.slots[0].event_id != first.slots[1].event_id


# -- the run ----------------------------------------------------------------------------------------------------
def test_a_tick_runs_each_slot_as_an_op_writes_one_transaction_and_a_retry_adds_nothing(
        pipeline_home, tmp_path, monkeypatch, store):
    setup_agents(pipeline_home, tmp_path, monkeypatch, "tick_agents_b", {"buyer": "buyer", "a": "waiter_a"})
    defs = tick_defs()
    period = decide(store, {"buyer": 6, "a": 4})
    with dg.instance_for_test() as instance:
        request = due_tick(defs, instance, monkeypatch, period)
        result = launch(instance, request)
        assert result.success
        slot_steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"
                      and e.step_key.startswith(("run_buyer__slot", "run_a__slot"))}
        assert len(slot_steps) == 10  # one op execution per slot, visible as such
        outputs = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"
                   and e.step_key.startswith("run_buyer__slot")]
        assert {"slot_key", "event_id", "reward", "schedule_lag_seconds"} <= set(
            outputs[0].step_output_data.metadata)
        events = read_events(store)
        expected = {slot_event_id(slot_key(a, period, i)) for a, i in slots_of(request)}
        assert set(events["event_id"]) == expected and len(events) == 10
        assert events["ingested_at"].nunique() == 1  # DuckDB's now() is the transaction's start: one commit
        (orders, keys), = rows(store, "SELECT count(*), count(DISTINCT order_key) FROM orders")
        assert orders == keys == 6  # every buyer slot placed its order

        retry = launch(instance, request, reexecution_options=dg.ReexecutionOptions(parent_run_id=result.run_id))
        assert retry.success
        assert len(read_events(store)) == 10
        assert rows(store, "SELECT count(*) FROM orders")[0][0] == 6
        assert not [e for e in retry.all_events if e.event_type_value == "STEP_START"
                    and "__slot" in e.step_key]  # a stored slot is not run again


def test_a_tick_that_crashes_midway_loses_no_slot_when_retried(pipeline_home, tmp_path, monkeypatch, store):
    setup_agents(pipeline_home, tmp_path, monkeypatch, "tick_agents_c", {"buyer": "buyer", "crasher": "crasher"})
    defs = tick_defs()
    period = decide(store, {"buyer": 3, "crasher": 2})
    (tmp_path / "crash").write_text("")
    with dg.instance_for_test() as instance:
        request = due_tick(defs, instance, monkeypatch, period)
        failed = launch(instance, request)
        assert not failed.success
        assert len(read_events(store)) == 0  # nothing of the tick was committed
        with store.connect(read_only=True) as conn:
            assert not store.has_table(conn, "orders") or not conn.execute("SELECT count(*) FROM orders").fetchone()[0]
        (tmp_path / "crash").unlink()
        retry = launch(instance, request, reexecution_options=dg.ReexecutionOptions(parent_run_id=failed.run_id))
        assert retry.success
        events = read_events(store)
        assert sorted(events["agent"]) == ["buyer"] * 3 + ["crasher"] * 2
        assert rows(store, "SELECT count(*), count(DISTINCT order_key) FROM orders")[0] == (3, 3)


def test_a_failing_agent_fails_its_slot_op_and_its_event_is_still_stored(pipeline_home, tmp_path, monkeypatch,
                                                                         store):
    (tmp_path / "flaky_tick.py").write_text("def broken(ctx):\n    raise RuntimeError('model endpoint 503')\n"
                                            "def fine(ctx):\n    return []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (pipeline_home / "config.toml").write_text(
        'builtin_agents = false\n[[agents]]\nname = "flaky"\nref = "flaky_tick:broken"\n'
        '[[agents]]\nname = "fine"\nref = "flaky_tick:fine"\n')
    defs = tick_defs()
    period = decide(store, {"flaky": 2, "fine": 2})
    with dg.instance_for_test() as instance:
        request = due_tick(defs, instance, monkeypatch, period)
        result = launch(instance, request)
        failures = {e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"}
        assert failures == {"run_flaky__slot[slot_0]", "run_flaky__slot[slot_1]"}
    events = read_events(store)
    assert len(events) == 4
    assert set(events.loc[events["agent"] == "flaky", "error_type"]) == {"RuntimeError"}


def test_per_agent_concurrency_limit_is_respected_while_agents_overlap(pipeline_home, tmp_path, monkeypatch, store):
    module = setup_agents(pipeline_home, tmp_path, monkeypatch, "tick_agents_d", {"a": "waiter_a", "b": "waiter_b"},
                          extra="[tick]\nmax_concurrent = 8\nagent_concurrency = 2\n")
    defs = tick_defs()
    module = sys.modules["tick_agents_d"]
    period = decide(store, {"a": 6, "b": 6})
    with dg.instance_for_test() as instance:
        request = due_tick(defs, instance, monkeypatch, period)
        assert launch(instance, request).success
    assert module.peak == {"a": 2, "b": 2}  # two at once per agent, never three: the limit, and overlap
    assert len(read_events(store)) == 12


@pytest.mark.parametrize("limit", [1])
def test_a_limit_of_one_runs_an_agent_serially(pipeline_home, tmp_path, monkeypatch, store, limit):
    setup_agents(pipeline_home, tmp_path, monkeypatch, "tick_agents_e", {"a": "waiter_a"},
                 extra=f"[tick]\nagent_concurrency_overrides = {{ a = {limit} }}\n")
    defs = tick_defs()
    module = sys.modules["tick_agents_e"]
    period = decide(store, {"a": 3})
    with dg.instance_for_test() as instance:
        request = due_tick(defs, instance, monkeypatch, period)
        assert launch(instance, request).success
    assert module.peak == {"a": 1}
