"""The prototype's capital-weighted reward: worked example, the prototype's unusable-output cases, parameter errors."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_pipeline.pipeline_settings import Settings
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


def test_missing_profit_pct_follows_the_prototype_and_pays_the_friction():
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
        RewardConfig.from_table({"fill_prb": 0.5})
    with pytest.raises(ConfigError, match="max_loss_usd"):
        RewardConfig.from_table({"budgets": {"x": {"capital_usd": 1.0, "max_loss_usd": 0}}})
    (pipeline_home / "config.toml").write_text("[reward]\nfill_prob = 0.5\n[reward.budgets.momentum]\n"
                                                "capital_usd = 1000.0\nmax_loss_usd = 50.0\n")
    loaded = Settings.load().reward
    assert loaded.fill_prob == 0.5
    assert loaded.budget_for("momentum").capital_usd == 1000.0
    assert loaded.budget_for("cross_venue_arb").capital_usd == 25_000.0


# -- the run's own cost ----------------------------------------------------------------------------------------------
def test_run_cost_is_subtracted_after_the_fill_probability():
    # the worked example, with a run that cost 0.75 USD: (0.7 x 107.5 - 0.75) / 300
    score = capital_weighted_reward("arb", [{"profit_pct": 0.50}], capital_usd=25_000, max_loss_usd=300,
                                    run_cost_usd=0.75)
    assert score == pytest.approx((75.25 - 0.75) / 300) and round(score, 5) == 0.24833
    # paid whether or not the trade fills: with no chance of a fill only the cost remains
    assert capital_weighted_reward("arb", [{"profit_pct": 0.50}], capital_usd=25_000, max_loss_usd=300,
                                   fill_prob=0.0, run_cost_usd=0.75) == pytest.approx(-0.75 / 300)
    assert capital_weighted_reward("arb", [{"profit_pct": 0.50}], capital_usd=25_000, max_loss_usd=300,
                                   run_cost_usd=0.0) == capital_weighted_reward(
        "arb", [{"profit_pct": 0.50}], capital_usd=25_000, max_loss_usd=300)


@pytest.mark.parametrize("output", [None, [], [{}], ["x"], [{"profit_pct": float("nan")}], [{"profit_pct": "abc"}]])
def test_unusable_output_with_a_known_cost_scores_minus_its_cost(output):
    # it cost money and produced nothing: the cost per unit of risk, negated (0.0 when the run was free)
    assert capital_weighted_reward("a", output, capital_usd=25_000, max_loss_usd=300, run_cost_usd=1.5) == \
        pytest.approx(-1.5 / 300)
    assert capital_weighted_reward("a", output, capital_usd=25_000, max_loss_usd=0.5, run_cost_usd=1.5) == \
        pytest.approx(-1.5)  # max loss floored to one dollar, as for the EV
    free = capital_weighted_reward("a", output, capital_usd=25_000, max_loss_usd=300, run_cost_usd=0.0)
    assert free == 0.0 and math.copysign(1.0, free) == 1.0


@pytest.mark.parametrize("cost", [-0.01, float("nan"), float("inf"), float("-inf"), "0.1", True, None])
def test_invalid_run_cost_raises_naming_it(cost):
    for output in ([{"profit_pct": 0.5}], None):
        with pytest.raises(ValueError, match="run_cost_usd"):
            capital_weighted_reward("a", output, capital_usd=25_000, max_loss_usd=300, run_cost_usd=cost)


@given(profit=st.floats(allow_nan=True, allow_infinity=True), cost=st.floats(min_value=0, max_value=1e12),
       capital=st.floats(min_value=0, max_value=1e12), max_loss=st.floats(min_value=0, max_value=1e9))
def test_never_nan_or_inf_with_a_run_cost(profit, cost, capital, max_loss):
    score = capital_weighted_reward("a", [{"profit_pct": profit}], capital_usd=capital, max_loss_usd=max_loss,
                                    run_cost_usd=cost)
    assert math.isfinite(score)


def test_score_output_charges_the_run_cost_unless_switched_off():
    out = [{"profit_pct": 0.5}]
    on, off = RewardConfig(), RewardConfig(charge_run_cost=False)
    assert on.charge_run_cost is True  # the pipeline's default
    charged = score_output("m", "momentum", out, on, cost_usd=2.0)[0]
    assert charged == pytest.approx((0.7 * (50.0 - 7.0) - 2.0) / 200.0)
    # off: today's numbers, whatever the cost; an unknown cost charges nothing
    assert score_output("m", "momentum", out, off, cost_usd=2.0)[0] == score_output("m", "momentum", out, on)[0] \
        == capital_weighted_reward("m", out, capital_usd=10_000, max_loss_usd=200)
    # an observation earns nothing, but its run was paid for
    assert score_output("w", "macro_regime", [{"regime": "calm"}], on, cost_usd=0.6)[0] == pytest.approx(-0.6 / 300)
    assert score_output("w", "macro_regime", [{"regime": "calm"}], off, cost_usd=0.6)[0] == 0.0
    with pytest.raises(ValueError, match="run_cost_usd"):
        score_output("m", "momentum", out, on, cost_usd=float("nan"))


def test_charge_run_cost_is_read_from_config_and_validated(pipeline_home):
    from agent_pipeline.settings import ConfigError

    assert Settings.load().reward.charge_run_cost is True
    (pipeline_home / "config.toml").write_text("[reward]\ncharge_run_cost = false\n")
    assert Settings.load().reward.charge_run_cost is False
    with pytest.raises(ConfigError, match="charge_run_cost"):
        RewardConfig.from_table({"charge_run_cost": "yes"})
