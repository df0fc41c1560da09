"""The seed's capital-weighted reward: worked example, the seed's unusable-output cases, parameter errors."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_pipeline.reward import RewardConfig, capital_weighted_reward, score_output


def test_worked_example_from_design():
    score = capital_weighted_reward("arb", [{"profit_pct": 0.50}], capital_usd=25_000, max_loss_usd=300)
    # gross EV 125, friction 17.5, EV 0.7 * 107.5 = 75.25, score 75.25 / 300
    assert score == pytest.approx(75.25 / 300)
    assert round(score, 5) == 0.25083


def test_friction_can_make_a_small_profit_negative():
    score = capital_weighted_reward("arb", [{"profit_pct": 0.05}], capital_usd=10_000, max_loss_usd=100)
    assert score == pytest.approx(0.7 * (5.0 - 7.0) / 100)


def test_max_loss_below_one_dollar_is_floored_to_one():
    assert capital_weighted_reward("a", [{"profit_pct": 1.0}], capital_usd=100, max_loss_usd=0.01) == \
        pytest.approx(0.7 * (1.0 - 0.07))


@pytest.mark.parametrize("output", [None, [], {}, "text", [None], [{}], [0], ["x"], [[1]],
                                    [{"profit_pct": float("nan")}], [{"profit_pct": float("inf")}],
                                    [{"profit_pct": "abc"}], [{"profit_pct": True}]])
def test_unusable_output_scores_zero(output):
    assert capital_weighted_reward("a", output, capital_usd=25_000, max_loss_usd=300) == 0.0


def test_missing_profit_pct_follows_the_seed_and_pays_the_friction():
    score = capital_weighted_reward("a", [{"other": 1}], capital_usd=25_000, max_loss_usd=300)
    assert score == pytest.approx(-0.7 * 17.5 / 300)


@pytest.mark.parametrize("kwargs, name", [
    ({"capital_usd": float("nan")}, "capital_usd"),
    ({"capital_usd": -1.0}, "capital_usd"),
    ({"max_loss_usd": float("inf")}, "max_loss_usd"),
    ({"fill_prob": 1.5}, "fill_prob"),
    ({"fill_prob": -0.1}, "fill_prob"),
    ({"slippage_bps": -1.0}, "slippage_bps"),
    ({"fees_bps": "2"}, "fees_bps"),
])
def test_invalid_parameters_raise_naming_the_parameter(kwargs, name):
    params = {"capital_usd": 25_000.0, "max_loss_usd": 300.0, **kwargs}
    with pytest.raises(ValueError, match=name):
        capital_weighted_reward("a", [{"profit_pct": 0.5}], **params)


@given(profit=st.floats(allow_nan=True, allow_infinity=True),
       capital=st.floats(min_value=0, max_value=1e12), max_loss=st.floats(min_value=0, max_value=1e9))
def test_never_nan_or_inf(profit, capital, max_loss):
    score = capital_weighted_reward("a", [{"profit_pct": profit}], capital_usd=capital, max_loss_usd=max_loss)
    assert math.isfinite(score)


def test_score_output_uses_the_strategy_budget_and_spares_observations():
    config = RewardConfig()
    reward, capital, max_loss = score_output("m", "momentum", [{"profit_pct": 0.5}], config)
    assert (capital, max_loss) == (10_000.0, 200.0)
    assert reward == pytest.approx(0.7 * (50.0 - 7.0) / 200.0)
    assert score_output("w", "macro_regime", [{"regime": "calm"}], config)[0] == 0.0


def test_reward_config_is_strict(pipeline_home):
    from agent_pipeline.settings import ConfigError

    with pytest.raises(ConfigError, match="fill_prb"):
        RewardConfig.from_mapping({"fill_prb": 0.5})
    with pytest.raises(ConfigError, match="max_loss_usd"):
        RewardConfig.from_mapping({"budgets": {"x": {"capital_usd": 1.0, "max_loss_usd": 0}}})
    (pipeline_home / "config.toml").write_text("[reward]\nfill_prob = 0.5\n[reward.budgets.momentum]\n"
                                                "capital_usd = 1000.0\nmax_loss_usd = 50.0\n")
    loaded = RewardConfig.load()
    assert loaded.fill_prob == 0.5
    assert loaded.budget_for("momentum").capital_usd == 1000.0
    assert loaded.budget_for("cross_venue_arb").capital_usd == 25_000.0
