"""Counters for the known label sets (the registry's agents and the store's, every reason code, both outcomes,
every kill-switch state) exist at 0 before their first increment, so the panels show 0 instead of no data and
the first order is an increase that ``increase()`` and ``rate()`` can see."""

import pytest

from agent_pipeline.metrics.publish import exposition, publish
from agent_pipeline.metrics.spec import HISTOGRAMS
from agent_pipeline.trading import KillSwitchState, Reason
from agent_pipeline_tests.metrics.helpers import (
    event,
    fill,
    gate_decision,
    loop_tables,
    order,
    quota,
    samples,
    value,
    write,
)

OUTCOMES = ("approved", "denied")
DENIAL_CODES = [r.value for r in Reason if r is not Reason.OK]
TRADING_COUNTERS = ("trading_gate_decisions_total", "trading_guardrail_denials_total", "trading_orders_total",
                    "trading_fills_total")


def _assert_all_counters_at_zero(parsed: dict, agent: str) -> None:
    assert value(parsed, "agent_runs_total", agent=agent) == 0
    assert value(parsed, "agent_errors_total", agent=agent) == 0
    for h in HISTOGRAMS:
        assert value(parsed, f"{h.name}_count", agent=agent) == 0 and value(parsed, f"{h.name}_sum", agent=agent) == 0
        for le in [*(str(float(b)) for b in h.buckets), "+Inf"]:
            assert value(parsed, f"{h.name}_bucket", agent=agent, le=le) == 0, (h.name, le)
    for outcome in OUTCOMES:
        assert value(parsed, "trading_gate_decisions_total", agent=agent, outcome=outcome) == 0
    for code in DENIAL_CODES:
        assert value(parsed, "trading_guardrail_denials_total", agent=agent, reason_code=code) == 0, code
    assert value(parsed, "trading_orders_total", agent=agent) == 0
    assert value(parsed, "trading_fills_total", agent=agent) == 0
    for gauge in ("agent_last_reward", "agent_last_cost_usd", "agent_last_latency_seconds",
                  "agent_last_run_timestamp_seconds"):
        assert value(parsed, gauge, agent=agent) is None  # a gauge with no run has no value, not 0


def test_the_registry_agents_are_exported_at_zero_before_anything_is_stored(pipeline_home):
    parsed = samples(exposition(agents=["momentum", "quiet"]))
    for agent in ("momentum", "quiet"):
        _assert_all_counters_at_zero(parsed, agent)
    assert [value(parsed, "trading_kill_switch_state", state=s.value) for s in KillSwitchState] == [1, 0, 0]
    assert not (pipeline_home / "agent_pipeline.duckdb").exists()


def test_without_a_registry_the_agents_in_the_store_are_known(store):
    write(store, event("ran", 1))  # the trading tables do not exist yet: no decision, order or fill so far
    loop_tables(store)
    with store.connect() as conn:
        quota(conn, "2026-01-01", "allotted", 3, 100.0)  # a quota, no run yet
    parsed = samples(exposition())
    _assert_all_counters_at_zero(parsed, "allotted")
    assert value(parsed, "agent_runs_total", agent="ran") == 1
    assert value(parsed, "trading_orders_total", agent="ran") == 0


def test_the_first_decision_order_and_fill_are_increases_of_series_that_already_existed(store):
    write(store, event("a", 1))
    before = samples(exposition(agents=["a", "b"]))
    loop_tables(store)
    with store.connect() as conn:
        gate_decision(conn, "a", True, "OK")
        fill(conn, order(conn, "a"))
        gate_decision(conn, "b", False, "NOTIONAL_LIMIT")
    after = samples(exposition(agents=["a", "b"]))
    trading = {k for k in after if k[0] in TRADING_COUNTERS}
    assert trading == {k for k in before if k[0] in TRADING_COUNTERS}  # no label set appears with its first event
    increases = {k: after[k] - before[k] for k in trading if after[k] != before[k]}
    assert increases == {
        ("trading_gate_decisions_total", (("agent", "a"), ("outcome", "approved"))): 1,
        ("trading_orders_total", (("agent", "a"),)): 1,
        ("trading_fills_total", (("agent", "a"),)): 1,
        ("trading_gate_decisions_total", (("agent", "b"), ("outcome", "denied"))): 1,
        ("trading_guardrail_denials_total", (("agent", "b"), ("reason_code", "NOTIONAL_LIMIT"))): 1,
    }
    assert value(before, "agent_runs_total", agent="b") == 0 and value(after, "agent_runs_total", agent="b") == 0


def test_a_malformed_agent_list_is_refused_with_what_is_wrong(pipeline_home):
    with pytest.raises(TypeError, match="'momentum'"):
        exposition(agents="momentum")  # would otherwise export one agent per letter
    with pytest.raises(ValueError, match="''.*3|3.*''"):
        publish("http://127.0.0.1:9", agents=["ok", "", 3])
