"""Market sources: the simulated market is deterministic under a seed and exercises every data hazard; the
replay source serves the latest quote at or before the asked time."""

from datetime import UTC, datetime, timedelta

import pytest

from agent_pipeline.market import MarketConfig, MarketDataError, ReplayMarket, SimulatedMarket, make_market
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.settings import ConfigError

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_same_seed_same_market_across_instances():
    a, b = SimulatedMarket(seed=3, fault_rate=0), SimulatedMarket(seed=3, fault_rate=0)
    assert a.quotes(T0) == b.quotes(T0)
    assert a.mid_history("BTC-USD", T0, 600, 10) == b.mid_history("BTC-USD", T0, 600, 10)


def test_different_seeds_differ():
    assert SimulatedMarket(seed=3, fault_rate=0).quotes(T0) != SimulatedMarket(seed=4, fault_rate=0).quotes(T0)


def test_quotes_are_sane_and_cover_every_venue_and_symbol():
    market = SimulatedMarket(fault_rate=0, stale_prob=0)
    quotes = market.quotes(T0)
    assert {(q.venue, q.symbol) for q in quotes} == {(v, s) for v in market.venues for s in market.symbols}
    for q in quotes:
        assert q.valid and q.bid < q.ask and q.spread_bps < 20
        assert q.data_age_sec == pytest.approx(market.profiles[q.venue].latency_ms / 1000)


def test_mid_is_continuous_across_midnight():
    market = SimulatedMarket(fault_rate=0)
    midnight = datetime(2026, 3, 3, tzinfo=UTC)
    mids = market.mid_history("BTC-USD", midnight + timedelta(seconds=5), 10, 1)
    jumps = [abs(b / a - 1) for a, b in zip(mids, mids[1:], strict=False)]
    assert max(jumps) < 0.002  # no gap at the day boundary


def test_hazards_occur_at_roughly_their_configured_rates():
    market = SimulatedMarket(seed=5, fault_rate=0.2, stale_prob=0.1, dislocation_prob=0.2)
    times = [T0 + timedelta(minutes=i, seconds=7) for i in range(600)]
    faults, stale, spreads = 0, 0, []
    for t in times:
        try:
            quotes = market.quotes(t)
        except MarketDataError as exc:
            assert "injected fault" in str(exc)
            faults += 1
            continue
        stale += sum(q.data_age_sec > 20 for q in quotes)
        by_symbol = {}
        for q in quotes:
            by_symbol.setdefault(q.symbol, []).append(q)
        spreads += [max(q.bid for q in qs) / min(q.ask for q in qs) - 1 for qs in by_symbol.values()]
    assert 0.12 < faults / len(times) < 0.28
    assert stale > 0
    assert max(spreads) > 0.002  # a dislocation opens a cross-venue gap of tens of bps


def test_fault_draws_depend_on_the_consumer():
    a = SimulatedMarket(fault_rate=0.5, consumer="a")
    b = SimulatedMarket(fault_rate=0.5, consumer="b")

    def failures(m):
        out = []
        for i in range(200):
            try:
                m.quotes(T0 + timedelta(seconds=i))
                out.append(False)
            except MarketDataError:
                out.append(True)
        return out

    assert failures(a) != failures(b)
    assert failures(a) == failures(SimulatedMarket(fault_rate=0.5, consumer="a"))


@pytest.mark.parametrize("kwargs", [{"fault_rate": 1.5}, {"stale_prob": -0.1}, {"dislocation_prob": float("nan")}])
def test_invalid_probabilities_are_rejected(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        SimulatedMarket(**kwargs)


def test_naive_time_and_unknown_symbol_are_errors():
    market = SimulatedMarket(fault_rate=0)
    with pytest.raises(ValueError, match="timezone"):
        market.quotes(datetime(2026, 1, 1))
    with pytest.raises(MarketDataError, match="DOGE"):
        market.mid_history("DOGE-USD", T0, 60)


def test_replay_serves_the_latest_quote_at_or_before_now(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text(
        "ts,venue,symbol,bid,ask,bid_size,ask_size\n"
        "2026-01-01T00:00:00Z,x,BTC-USD,100,101,1,1\n"
        "2026-01-01T00:00:10Z,x,BTC-USD,102,103,1,1\n"
        "2026-01-01T00:00:05Z,y,BTC-USD,99,100,2,2\n"
    )
    market = ReplayMarket(path, loop=False)
    quotes = {q.venue: q for q in market.quotes(datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC))}
    assert quotes["x"].bid == 100 and quotes["x"].data_age_sec == pytest.approx(7)
    assert quotes["y"].ask == 100 and quotes["y"].data_age_sec == pytest.approx(2)
    with pytest.raises(MarketDataError, match="no quotes at or before"):
        market.quotes(datetime(2025, 12, 31, tzinfo=UTC))


def test_replay_loop_maps_any_time_into_the_file():
    market = ReplayMarket()  # the bundled sample
    quotes = market.quotes(datetime.now(UTC))
    assert {q.venue for q in quotes} == set(market.venues)
    assert all(q.data_age_sec < 15 for q in quotes)
    assert len(market.mid_history("BTC-USD", datetime.now(UTC), 600, 10)) > 10


def test_replay_history_reaches_across_the_loop_boundary():
    market = ReplayMarket()
    cycle = (market.end - market.start).total_seconds() + 1.0
    just_after_wrap = market.start + timedelta(seconds=3 * cycle + 30)
    history = market.mid_history("BTC-USD", just_after_wrap, 600, 10)
    assert len(history) == 60
    assert history[-1] == pytest.approx(market.mid_history("BTC-USD", market.start + timedelta(seconds=30), 20, 10)[-1])


def test_replay_bad_files_say_what_is_wrong(tmp_path):
    with pytest.raises(MarketDataError, match="does not exist"):
        ReplayMarket(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,venue,bid\n2026-01-01T00:00:00Z,x,1\n")
    with pytest.raises(MarketDataError, match="missing column"):
        ReplayMarket(bad)


def test_market_config_is_strict_and_builds_each_source(pipeline_home):
    with pytest.raises(ConfigError, match="fault_rat"):
        MarketConfig.from_table({"fault_rat": 0.1})
    with pytest.raises(ConfigError, match="source"):
        MarketConfig(source="exchange")
    assert isinstance(make_market(MarketConfig()), SimulatedMarket)
    assert isinstance(make_market(MarketConfig(source="replay")), ReplayMarket)
    (pipeline_home / "config.toml").write_text('[market]\nsource = "replay"\n')
    assert Settings.load().market.source == "replay"
