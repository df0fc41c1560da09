"""The distribution chart is a valid PNG of the right size; the reward_config resource layers over config.toml."""

import struct
import zlib

import numpy as np
import pandas as pd

from agent_pipeline.reward.chart import boxplot_png, markdown_image, png_bytes


def decode(png: bytes):
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    pos, data = 8, b""
    while pos < len(png):
        length = struct.unpack(">I", png[pos:pos + 4])[0]
        kind = png[pos + 4:pos + 8]
        body = png[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", png[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b"IDAT":
            data += body
        pos += 12 + length
    raw = zlib.decompress(data)
    assert len(raw) == height * (1 + 3 * width)
    rows = [raw[r * (1 + 3 * width) + 1:(r + 1) * (1 + 3 * width)] for r in range(height)]
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(height, width, 3)


def test_png_writer_round_trips_pixels():
    img = np.zeros((5, 7, 3), dtype=np.uint8)
    img[2, 3] = (255, 10, 20)
    assert (decode(png_bytes(img)) == img).all()


def test_boxplot_draws_one_row_per_agent_with_data():
    frame = pd.DataFrame([
        {"agent": a, "window": "7d", "n": n, "mean": 0.1 * i, "p05": -1.0, "p25": -0.2, "p50": 0.0, "p75": 0.3,
         "p95": 1.2, "cvar05": -1.5}
        for i, (a, n) in enumerate([("alpha", 10), ("beta", 20), ("idle", 0)])
    ])
    img = decode(boxplot_png(frame, "7d"))
    assert img.shape[0] == 34 + 34 + 2 * 34  # title, axis, two agents with runs
    colours = {tuple(p) for p in img.reshape(-1, 3)}
    assert (120, 160, 220) in colours and (200, 30, 30) in colours and (230, 140, 20) in colours
    assert markdown_image(b"x", "alt").startswith("![alt](data:image/png;base64,")


def test_boxplot_of_an_empty_window_is_still_a_picture():
    img = decode(boxplot_png(pd.DataFrame(columns=["agent", "window", "n"]), "7d"))
    assert img.shape[1] == 760


def _resource_from_settings():
    from agent_pipeline.defs.resources import shared_resources
    from agent_pipeline.pipeline_settings import Settings

    return shared_resources(Settings.load())["reward_config"]


def test_run_config_overrides_the_resource_which_carries_config_toml_over_defaults(pipeline_home):
    from agent_pipeline.defs.config_models import layered
    from agent_pipeline.defs.reward.resources import RewardRunConfig

    (pipeline_home / "config.toml").write_text(
        "[reward]\nfill_prob = 0.5\nbudgets = { momentum = { capital_usd = 1000.0, max_loss_usd = 50.0 } }\n"
        "[reward.history]\nmax_reward = 7.0\n")
    from_file = _resource_from_settings().config()
    assert from_file.fill_prob == 0.5 and from_file.history.max_reward == 7.0
    assert from_file.budget_for("momentum").capital_usd == 1000.0
    run = RewardRunConfig(fill_prob=0.9, history={"max_reward": 9.0}, default_budget={"capital_usd": 5000.0})
    overridden = layered(from_file, run, "agent_rewards run config")
    assert overridden.fill_prob == 0.9 and overridden.history.max_reward == 9.0
    assert overridden.default_budget.capital_usd == 5000.0
    assert overridden.budget_for("momentum").capital_usd == 1000.0 and overridden.slippage_bps == 5.0
    assert overridden.history.min_reward == from_file.history.min_reward  # a history key replaces that key only


def test_resource_switches_run_cost_charging_for_a_reprice(pipeline_home):
    from agent_pipeline.defs.config_models import layered
    from agent_pipeline.defs.reward.resources import RewardRunConfig

    assert _resource_from_settings().config().charge_run_cost is True
    (pipeline_home / "config.toml").write_text("[reward]\ncharge_run_cost = false\n")
    from_file = _resource_from_settings().config()
    assert from_file.charge_run_cost is False
    assert layered(from_file, RewardRunConfig(charge_run_cost=True), "run config").charge_run_cost is True
