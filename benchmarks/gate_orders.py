"""What the gate benchmarks send: one order every check passes, and limits no order of a benchmark reaches, so
each measures the cost of the checks rather than a denial."""

from agent_pipeline.trading import GuardrailConfig

SIGNAL = {"notional_usd": 1_000.0, "expected_edge_bps": 25.0, "spread_bps": 5.0, "slippage_bps": 3.0,
          "data_age_sec": 1.0, "paper": True, "symbol": "BTC-USD", "side": "buy", "venue": "sim_a",
          "price": 60_000.0, "size": 1_000.0 / 60_000.0, "quote_size": 2.0, "confidence": 0.8,
          "reference_price": 60_010.0, "strategy": "bench", "capital_usd": 100_000.0}

ALL_CHECKS = GuardrailConfig(min_confidence=0.1, max_quote_fraction=0.5, max_price_deviation_bps=50,
                             max_leverage=1_000.0, max_orders_per_window=10 ** 9,
                             max_orders_per_window_per_strategy=10 ** 9, max_rolling_notional_usd=1e15)
