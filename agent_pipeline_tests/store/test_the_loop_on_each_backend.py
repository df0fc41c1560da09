"""The loop on each backend: the same events give the same rewards, distributions, quotas, gate decisions and
metrics on the DuckDB file and on PostgreSQL (the domains' SQL, the translation and the analytical copy)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from agent_pipeline.allocation import AllocationConfig
from agent_pipeline.allocation.decision import AgentInfo, decide, period_start_for
from agent_pipeline.allocation.tables import ALLOCATION, capital_in_force, read_recent_rewards, write_decision
from agent_pipeline.market import SimulatedMarket
from agent_pipeline.metrics.collector import take_snapshot
from agent_pipeline.reward import RewardConfig
from agent_pipeline.reward.distributions import read_distributions, refresh_distributions
from agent_pipeline.reward.history import read_rewards, recompute_window
from agent_pipeline.store import AgentEvent, Store, append_event
from agent_pipeline.trading.config import ExecutionConfig, GuardrailConfig
from agent_pipeline.trading.execution import ExecutionLayer
from agent_pipeline.trading.kill_switch import KillSwitch

AS_OF = datetime.now(UTC).replace(microsecond=0)
AGENTS = [AgentInfo("momentum", "signal", "momentum"), AgentInfo("regime", "signal", "regime")]


def _events(store: Store) -> None:
    for i in range(40):
        agent = AGENTS[i % 2].name
        failed = i % 7 == 0
        append_event(store, AgentEvent(
            run_id=f"r{i}", agent=agent, strategy=agent, kind="signal",
            started_at=AS_OF - timedelta(minutes=5 * i + 1), latency_seconds=0.01 * (i + 1), cost_usd=0.001 * i,
            reward=None if failed else 0.1 * (i % 5) - 0.15, error="boom" if failed else None,
            output=None if failed else [{"profit_pct": 0.2 * (i % 5) + 0.5}], event_id=f"e{i:03d}", source="dagster"))


def _loop(store: Store, tmp_path) -> dict:
    _events(store)
    reprice = recompute_window(store, AS_OF - timedelta(days=1), AS_OF + timedelta(minutes=1), RewardConfig())
    snapshot = refresh_distributions(store, as_of=AS_OF, last_n_runs=10)
    with store.connect() as conn:
        pairs, source = read_recent_rewards(conn, [a.name for a in AGENTS], 10, AS_OF,
                                            since=AS_OF - timedelta(days=2))
    cfg = AllocationConfig()
    period = period_start_for(AS_OF, cfg.period_minutes)
    allocation, record = decide(cfg, AGENTS, pairs, period)
    with store.connect() as conn:
        ALLOCATION.ensure(store, conn)
        write_decision(conn, period, AS_OF, allocation, {a.name: (a.kind, a.strategy) for a in AGENTS}, record)
        funded = max(allocation.capital, key=lambda a: (allocation.capital[a], a))
        capital = capital_in_force(conn, funded)
    market = SimulatedMarket(fault_rate=0.0, stale_prob=0.0)
    quote = {(q.venue, q.symbol): q for q in market.quotes(datetime.now(UTC))}[("sim_a", "BTC-USD")]
    proposal = {"notional_usd": 100.0, "expected_edge_bps": 25.0, "spread_bps": 5.0, "slippage_bps": 3.0,
                "data_age_sec": 1.0, "paper": True, "symbol": "BTC-USD", "side": "buy", "venue": "sim_a",
                "price": quote.ask, "size": 100.0 / quote.ask, "quote_size": 2.0, "confidence": 0.8,
                "reference_price": quote.mid, "profit_pct": 0.25}
    # the decision is for AS_OF's period, fixed when this module was imported: in a long suite the hour (and its
    # grace) may have ended by the time the gate runs, which would deny every order as ALLOCATION_STALE
    layer = ExecutionLayer(store, market, guardrails=GuardrailConfig(),
                           execution=ExecutionConfig(allocation_grace_sec=6 * 3600.0),
                           kill_switch=KillSwitch(tmp_path / "ks.json"))
    run = {"agent": funded, "strategy": funded, "event_id": "e001", "output": [proposal, dict(proposal)]}
    first = layer.execute(run, run_id="run-1")
    again = layer.execute(run, run_id="run-1")  # a retried op: duplicate protection
    metrics = take_snapshot(store, home=tmp_path, agents=[a.name for a in AGENTS])
    rewards = read_rewards(store)
    distributions = read_distributions(store).sort_values(["agent", "window"]).reset_index(drop=True)
    return {
        "reprice": (reprice.inserted, reprice.by_pricing, reprice.changed),
        "rewards": [(r.event_id, None if r.reward is None or math.isnan(r.reward) else round(r.reward, 9), r.pricing)
                    for r in rewards.itertuples()],
        "events_seen": snapshot.events,
        "distributions": [
            tuple(None if (isinstance(v, float) and math.isnan(v)) else (round(v, 9) if isinstance(v, float) else v)
                  for v in row)
            for row in distributions[["agent", "window", "n", "mean", "std", "p05", "p50", "p95", "cvar05",
                                      "win_rate", "error_rate", "runs", "errors"]].itertuples(index=False)],
        "pairs": [(a, round(r, 9)) for a, r in pairs], "source": source,
        "quotas": dict(allocation.quotas), "capital": (funded, capital),
        "gate": (first.approved, first.denied, first.filled, dict(first.by_reason), again.approved,
                 dict(again.by_reason)),
        "metrics": sorted((s.name, s.labels, round(s.value, 6)) for s in metrics.samples
                          if not s.name.endswith("timestamp_seconds")),
        "totals": {a: (t.runs, t.errors, t.hists["agent_latency_seconds"].buckets)
                   for a, t in sorted(metrics.agents.items())},
    }


@pytest.fixture
def on_duckdb(pipeline_home, tmp_path):
    return _loop(Store.at_home(pipeline_home), tmp_path / "duck")


def test_the_loop_gives_the_same_answers_on_postgresql_as_on_the_duckdb_file(on_duckdb, postgres_url, tmp_path):
    assert on_duckdb["reprice"][0] == 40 and on_duckdb["gate"][0] == 2 and on_duckdb["gate"][4] == 0
    assert on_duckdb["distributions"] and on_duckdb["metrics"]
    database = Store(postgres_url)
    on_postgres = _loop(database, tmp_path / "pg")
    with database.connect(read_only=True) as conn:  # the rows are in the database itself
        assert conn.raw.execute("SELECT count(*) FROM agent_events").fetchone()[0] == 40
        assert conn.raw.execute("SELECT count(*) FROM orders").fetchone()[0] == 2
    for key, value in on_duckdb.items():
        assert on_postgres[key] == value, key
