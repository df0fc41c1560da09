import math

import pytest

from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.settings import ConfigError
from agent_pipeline.trading import ExecutionConfig, GuardrailConfig

PROTOTYPE_DEFAULTS = {"paper_only": True, "max_order_notional_usd": 10_000, "max_daily_loss_usd": 500,
                 "min_expected_edge_bps": 10.0, "max_spread_bps": 15.0, "max_slippage_bps": 20.0,
                 "max_staleness_sec": 30, "max_error_rate_5m": 0.10}


def test_prototype_fields_and_defaults_are_kept():
    cfg = GuardrailConfig()
    for name, value in PROTOTYPE_DEFAULTS.items():
        assert getattr(cfg, name) == value


def test_unknown_keys_fail_at_construction_and_at_load():
    with pytest.raises(TypeError):
        GuardrailConfig(max_notional=5)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="unknown key"):
        GuardrailConfig.from_table({"max_order_notional": 5})


@pytest.mark.parametrize("name", ["max_order_notional_usd", "max_daily_loss_usd", "max_spread_bps",
                                  "max_slippage_bps", "max_staleness_sec", "max_price_deviation_bps",
                                  "max_leverage", "max_rolling_notional_usd", "rate_window_sec"])
@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, "10", True])
def test_limits_must_be_positive_and_finite(name, bad):
    with pytest.raises(ConfigError, match=name):
        GuardrailConfig(**{name: bad})


@pytest.mark.parametrize("name,bad", [("max_error_rate_5m", 0), ("max_error_rate_5m", 1.5),
                                      ("min_confidence", 1.2), ("max_quote_fraction", 0),
                                      ("max_orders_per_window", 0), ("max_orders_per_window", 2.5),
                                      ("breaker_consecutive_ticks", 0), ("paper_only", 1),
                                      ("trip_on", ["NOT_A_CODE"]), ("trip_on", "PRICE_COLLAR"),
                                      ("breaker_on_reward_collapse", 1)])
def test_invalid_values_fail(name, bad):
    with pytest.raises(ConfigError):
        GuardrailConfig(**{name: bad})


def test_loader_turns_the_two_person_rule_on_and_reads_the_file(pipeline_home):
    assert GuardrailConfig().require_approval is False
    assert Settings.load().guardrails.require_approval is True
    (pipeline_home / "config.toml").write_text('[guardrails]\nmin_confidence = 0.4\ntrip_on = ["PRICE_COLLAR"]\n'
                                               'require_approval = false\n')
    cfg = Settings.load().guardrails
    assert cfg.min_confidence == 0.4 and cfg.trip_on == ("PRICE_COLLAR",) and not cfg.require_approval
    (pipeline_home / "config.toml").write_text("[guardrails]\nmax_daily_loss_usd = 0\n")
    with pytest.raises(ConfigError, match="max_daily_loss_usd"):
        Settings.load()


def test_execution_config_is_strict():
    with pytest.raises(ConfigError):
        ExecutionConfig(default_capital_usd=0)
    with pytest.raises(ConfigError):
        ExecutionConfig(max_order_fraction=2)
    with pytest.raises(ConfigError, match="unknown"):
        ExecutionConfig.from_table({"capital": 1})
