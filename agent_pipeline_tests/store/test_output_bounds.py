"""One cap on an output's depth and size, kept by the run-time check, the import and the repricing, so a deep or
huge output can never make a day's repricing fail forever."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from agent_pipeline import output_bounds
from agent_pipeline.agents import AgentContext, AgentResult, AgentSpec, run_instrumented
from agent_pipeline.agents.registry import FunctionAgent, LoadedAgent
from agent_pipeline.market import SimulatedMarket
from agent_pipeline.reward import RewardConfig
from agent_pipeline.reward.history import read_rewards, recompute_window
from agent_pipeline.store import AgentEvent, append_event
from agent_pipeline.store.importer import import_events

DEPTH, SIZE = output_bounds.MAX_OUTPUT_DEPTH, output_bounds.MAX_OUTPUT_BYTES
DAY = datetime(2024, 3, 1, tzinfo=UTC)


def nested(depth: int, leaf=0):
    """A value ``depth`` containers deep, built without recursion."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def deep_text(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [0, 1, 2, DEPTH, DEPTH + 1, 1000, 100_000])
def test_depth_is_measured_iteratively_and_the_same_on_values_and_text(depth):
    expected = min(depth, DEPTH + 1)
    assert output_bounds.value_depth(nested(depth)) == expected
    assert output_bounds.text_depth(deep_text(depth)) == expected
    assert (output_bounds.value_problem(nested(depth)) is None) == (depth <= DEPTH)
    if depth < 500:
        assert output_bounds.text_depth(json.dumps(nested(depth))) == expected


def test_brackets_inside_strings_do_not_count_and_a_cycle_ends():
    assert output_bounds.text_depth(json.dumps([{"note": "[[[[{{{{" * 20, "q": '\\"[[['}])) == 2
    loop: list = []
    loop.append(loop)
    assert output_bounds.value_depth(loop) == DEPTH + 1


def test_size_counts_utf8_bytes_of_the_json_text():
    assert output_bounds.text_problem(json.dumps(["x" * (SIZE - 10)])) is None
    assert str(SIZE // 1024) in output_bounds.text_problem(json.dumps(["x" * SIZE]))
    assert output_bounds.size_problem(json.dumps(["é" * (SIZE // 2)], ensure_ascii=False)) is not None


CTX = AgentContext(now=datetime(2026, 3, 2, 12, tzinfo=UTC), market=SimulatedMarket(fault_rate=0), run_id="r1")


def agent_returning(output) -> LoadedAgent:
    spec = AgentSpec(name="user", ref="tests:fn", timeout_sec=5.0)
    return LoadedAgent(spec, FunctionAgent("user", "signal", "cross_venue_arb", lambda ctx: output))


@pytest.mark.parametrize("output, cap", [
    ([{"profit_pct": 0.5, "detail": nested(1000)}], f"{DEPTH} levels"),
    ([{"profit_pct": 0.5, "detail": nested(DEPTH)}], f"{DEPTH} levels"),  # 34 deep in all
    ([{"profit_pct": nested(2000)}], f"{DEPTH} levels"),  # before the number check prints it
    (AgentResult([{"profit_pct": 0.5, "blob": "x" * SIZE}]), f"{SIZE:,} bytes"),
])
def test_an_output_past_a_cap_is_an_error_event_naming_the_cap(output, cap):
    event = run_instrumented(agent_returning(output), CTX, RewardConfig())
    assert not event.ok and event.error_type == "AgentOutputError" and event.output is None
    assert cap in event.error and event.reward is None


def test_an_output_at_the_caps_is_fine():
    event = run_instrumented(agent_returning([{"profit_pct": 0.5, "d": nested(DEPTH - 2)}]), CTX, RewardConfig())
    assert event.ok, event.error


def test_import_quarantines_outputs_past_the_caps_and_keeps_the_rest(each_store, tmp_path):
    store = each_store
    path = tmp_path / "events.jsonl"
    base = {"agent": "a", "reward": 0.1, "ts": 1704067200}
    lines = [
        json.dumps({**base, "output": "DEEP"}).replace('"DEEP"', deep_text(1000)),
        json.dumps({**base, "output": "DEEP"}).replace('"DEEP"', deep_text(DEPTH + 1)),
        json.dumps({**base, "output": "DEEP", "error": "boom"}).replace('"DEEP"', deep_text(5000)),
        json.dumps({**base, "output": "DEEP"}).replace('"DEEP"', deep_text(DEPTH)),  # at the cap: fine
        json.dumps({**base, "output": [{"note": "[" * 100, "items": [{} for _ in range(100)]}]}),  # wide, shallow
        json.dumps({**base, "output": ["x" * SIZE]}),
    ]
    path.write_text("\n".join(lines) + "\n")
    report = import_events(store, path)
    assert report.quarantined == {"output_too_deep": 3, "output_too_large": 1} and report.inserted == 2
    with store.connect() as conn:
        quarantined = conn.execute("SELECT line_number, reason, detail FROM import_quarantine ORDER BY 1").fetchall()
    assert [q[:2] for q in quarantined] == [(1, "output_too_deep"), (2, "output_too_deep"), (3, "output_too_deep"),
                                            (6, "output_too_large")]
    assert f"{DEPTH} levels" in quarantined[0][2] and f"{SIZE:,} bytes" in quarantined[3][2]


def stored(store, output_sql: str) -> None:
    """An event whose stored output is ``output_sql``, as a store written before the caps may hold."""
    append_event(store, AgentEvent(run_id="r", agent="old", started_at=DAY + timedelta(hours=1),
                                   latency_seconds=0.1, strategy="cross_venue_arb", output=[{"profit_pct": 0.5}],
                                   event_id="ok"))
    with store.connect() as conn:
        conn.execute("INSERT INTO agent_events (event_id, run_id, agent, strategy, started_at, output) "
                     f"VALUES ('bad', 'r', 'old', 'cross_venue_arb', ?, {output_sql})", [DAY + timedelta(hours=2)])


@pytest.mark.parametrize("output_sql", [
    f"'{deep_text(1000)}'",
    f"'{deep_text(DEPTH + 1)}'",
    f"'[\"' || repeat('x', {SIZE}) || '\"]'",
])
def test_repricing_survives_a_deep_or_huge_stored_output_and_says_so(store, output_sql):
    stored(store, output_sql)
    result = recompute_window(store, DAY, DAY + timedelta(days=1), RewardConfig())
    assert result.by_pricing == {"recomputed": 1, "unusable_output": 1}
    assert "unusable_output 1" in result.summary()
    rewards = read_rewards(store).set_index("event_id")
    assert rewards.loc["bad", "reward"] == 0.0 and rewards.loc["bad", "pricing"] == "unusable_output"
    assert rewards.loc["ok", "reward"] > 0


def test_the_agent_rewards_materialization_counts_unusable_outputs(store):
    import dagster as dg

    from agent_pipeline.defs import reward as reward_domain
    from agent_pipeline.defs.resources import RewardConfigResource, StoreResource
    from agent_pipeline.reward import RewardConfig
    from agent_pipeline_tests.location import loaded

    stored(store, f"'{deep_text(1000)}'")
    result = dg.materialize(
        list(reward_domain.build_defs(*loaded()).assets), selection=["agent_rewards"], partition_key=f"{DAY:%Y-%m-%d}",
        resources={"store": StoreResource(), "reward_config": RewardConfigResource.from_config(RewardConfig())},
        raise_on_error=False)
    assert result.success
    [materialization] = result.asset_materializations_for_node("agent_rewards")
    assert materialization.metadata["unusable_outputs"].value == 1
