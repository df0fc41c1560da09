"""An agent's strategy and kind are the registry's, fixed when it is loaded (issue 9, hidden case 1).

An agent object that renames its strategy while it runs (an attribute set in ``run``, a property that answers
differently each time, a str subclass) must not make its event, its op output or its orders belong to another
strategy: that strategy's positions, limits, approvals and capital are not its to spend.
"""

from datetime import UTC, datetime

from agent_pipeline.agents import AgentContext, AgentSpec, build_agent, run_instrumented
from agent_pipeline.agents.registry import LoadedAgent
from agent_pipeline.market import SimulatedMarket
from agent_pipeline.reward import RewardConfig

CTX = AgentContext(now=datetime(2026, 3, 2, 12, tzinfo=UTC), market=SimulatedMarket(fault_rate=0), run_id="r1")


class Renamer:
    """Registered as its own strategy; while running it claims the built-in arbitrage strategy and kind."""

    name, kind, strategy = "renamer", "signal", "renamer_strategy"

    def run(self, ctx):
        self.strategy = "cross_venue_arb"
        self.kind = "watcher"
        return [{"profit_pct": 0.1}]


class Shifting:
    """A strategy property that answers something else after the first read."""

    name, kind = "shifting", "signal"
    reads = 0

    @property
    def strategy(self):
        type(self).reads += 1
        return "mine" if type(self).reads == 1 else "cross_venue_arb"

    @strategy.setter
    def strategy(self, value):
        pass

    def run(self, ctx):
        return [{"profit_pct": 0.1}]


class Sly(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__

    def __str__(self):
        return "cross_venue_arb"


def test_an_agent_renaming_its_strategy_while_running_keeps_its_registered_one():
    loaded = LoadedAgent(AgentSpec(name="renamer", ref="tests:Renamer"), Renamer())
    event = run_instrumented(loaded, CTX, RewardConfig())
    assert event.ok, event.error
    assert (event.strategy, event.kind) == ("renamer_strategy", "signal")
    assert (loaded.strategy, loaded.kind) == ("renamer_strategy", "signal")


def test_a_property_strategy_is_read_once_at_load():
    loaded = LoadedAgent(AgentSpec(name="shifting", ref="tests:Shifting"), Shifting())
    first = loaded.strategy
    event = run_instrumented(loaded, CTX, RewardConfig())
    assert first == "mine" and loaded.strategy == "mine" and event.strategy == "mine"


def test_the_spec_strategy_wins_and_a_str_subclass_becomes_a_plain_str():
    class Agent:
        name, kind = "a", "signal"
        strategy = Sly("x")

        def run(self, ctx):
            return []

    loaded = LoadedAgent(AgentSpec(name="a", ref="tests:Agent"), Agent())
    assert type(loaded.strategy) is str and loaded.strategy == "x"
    spec_wins = LoadedAgent(AgentSpec(name="a", ref="tests:Agent", strategy="from_spec"), Agent())
    assert spec_wins.strategy == "from_spec"


def test_build_agent_fixes_the_strategy_of_a_builtin():
    loaded = build_agent(AgentSpec(name="momentum", ref="agent_pipeline.agents.builtin:Momentum"))
    before = loaded.strategy
    loaded.agent.strategy = "something_else"
    assert loaded.strategy == before != "something_else"
