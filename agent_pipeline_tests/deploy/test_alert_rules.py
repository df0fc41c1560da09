"""The alert rules mean what the pipeline means: AgentRewardCollapse fires for exactly the agents the Dagster check
reward_collapse calls collapsed (fed through the real exporter, compared by promtool, which compares floats
exactly), on the windows the check reads; every alert links to a runbook section that exists in the README."""

import random
import re
import shutil
import subprocess

import pandas as pd
import pytest
import yaml

from agent_pipeline.metrics.publish import exposition
from agent_pipeline.pipeline_settings import Settings
from agent_pipeline.reward.checks import collapsed_agents
from agent_pipeline.reward.collapse import BASELINE_WINDOW, RECENT_WINDOW
from agent_pipeline.reward.config import CollapseConfig
from agent_pipeline.store import Store
from agent_pipeline_tests.deploy.promql import OPS, alert_rules
from agent_pipeline_tests.metrics.helpers import event, samples, write

README = OPS.parent / "README.md"
needs_promtool = pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")


def _cases(rng: random.Random, min_runs: int) -> list[tuple]:
    """(agent, window, n, mean, std) rows of reward_distributions: random ones around the agents' reward scale,
    plus the edges (exactly on the collapse line, exactly min_runs, undefined std or mean)."""
    rows = []
    for i in range(40):
        base, std = rng.uniform(-0.05, 0.25), rng.choice([None, float("nan"), rng.uniform(0, 0.12)])
        recent = rng.uniform(-0.1, 0.25)
        n_recent, n_base = rng.choice([min_runs - 1, min_runs, 50]), rng.choice([min_runs - 1, min_runs, 3000])
        rows += [(f"r{i}", RECENT_WINDOW, n_recent, recent, rng.uniform(0, 0.1)),
                 (f"r{i}", BASELINE_WINDOW, n_base, base, std)]
    return rows


def _edges(cfg: CollapseConfig) -> list[tuple]:
    on_line = 0.2 - max(cfg.drop_std * 0.01, cfg.min_drop)
    rows = [("on_line", RECENT_WINDOW, cfg.min_runs, on_line, 0.0),
            ("on_line", BASELINE_WINDOW, cfg.min_runs, 0.2, 0.01),
            ("just_below", RECENT_WINDOW, cfg.min_runs, on_line - 1e-12, 0.0),
            ("just_below", BASELINE_WINDOW, cfg.min_runs, 0.2, 0.01),
            ("no_base_mean", RECENT_WINDOW, 100, -1.0, 0.1),
            ("no_base_mean", BASELINE_WINDOW, 0, None, None)]
    if cfg.floor is not None:  # exactly on the floor is no collapse, just below it is, with or without a week
        rows += [("on_floor", RECENT_WINDOW, cfg.min_runs, cfg.floor, 0.0),
                 ("below_floor", RECENT_WINDOW, cfg.min_runs, cfg.floor - 1e-12, 0.0),
                 ("below_floor", BASELINE_WINDOW, cfg.min_runs, cfg.floor, 0.0)]
    return rows


def _write_distributions(store: Store, rows: list[tuple]) -> None:
    with store.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS reward_distributions")
        conn.execute('CREATE TABLE reward_distributions (agent VARCHAR, "window" VARCHAR, n BIGINT, mean DOUBLE, '
                     "std DOUBLE, win_rate DOUBLE, computed_at TIMESTAMPTZ)")
        conn.executemany("INSERT INTO reward_distributions VALUES (?, ?, ?, ?, ?, 0.5, now())", rows)


def _series(parsed: dict) -> list[dict]:
    """The exported reward-collapse inputs as promtool input series (what Prometheus would have scraped)."""
    out = []
    for (name, labels), v in sorted(parsed.items()):
        if name.startswith(("agent_reward_rolling_", "agent_reward_collapse_")):
            matchers = ",".join(f'{k}="{val}"' for k, val in (("job", "agent_pipeline"), *labels))
            out.append({"series": f"{name}{{{matchers}}}", "values": f"{v!r}+0x10"})
    return out


@needs_promtool
def test_reward_collapse_rule_fires_for_exactly_the_agents_the_dagster_check_calls_collapsed(store, pipeline_home,
                                                                                            tmp_path):
    rule = next(r for r in alert_rules() if r["alert"] == "AgentRewardCollapse")
    rng = random.Random(12)
    tests, collapsed_total, judged_total = [], 0, 0
    write(store, event("a", 1))
    for drop_std, min_drop, min_runs, floor in ((3.0, 0.1, 20, None), (1.5, 0.02, 5, 0.0), (0.5, 0.3, 1, -0.2)):
        cfg = CollapseConfig(drop_std=drop_std, min_drop=min_drop, min_runs=min_runs, floor=floor)
        (pipeline_home / "config.toml").write_text(
            f"[reward.collapse]\ndrop_std = {drop_std}\nmin_drop = {min_drop}\nmin_runs = {min_runs}\n"
            + ("" if floor is None else f"floor = {floor}\n"))
        rows = _cases(rng, min_runs) + _edges(cfg)
        _write_distributions(store, rows)
        frame = pd.DataFrame(rows, columns=["agent", "window", "n", "mean", "std"])
        frame["std"] = frame["std"].astype(float)  # as the distributions reader gives it: NaN for undefined
        verdict = collapsed_agents(frame, cfg)
        collapsed_total += len(verdict)
        judged_total += len({r[0] for r in rows})
        names = {c.agent for c in verdict}
        assert "just_below" in names and "on_line" not in names
        assert floor is None or ("below_floor" in names and "on_floor" not in names)
        expected = [{"labels": f'{{agent="{c.agent}"}}', "value": c.gap} for c in verdict]
        tests.append({"name": f"collapse as the check sees it, drop_std={drop_std} min_drop={min_drop} "
                              f"min_runs={min_runs} floor={floor}",
                      "interval": "1m", "input_series": _series(samples(exposition(
                          agents=sorted({r[0] for r in rows}),  # registered, as the pipeline's agents are
                          expectations=Settings.load().alert_inputs()))),
                      "promql_expr_test": [{"expr": rule["expr"], "eval_time": "5m", "exp_samples": expected}]})
    assert collapsed_total >= 10 and judged_total - collapsed_total >= 10  # both outcomes well represented
    spec = tmp_path / "collapse.test.yml"
    spec.write_text(yaml.safe_dump({"rule_files": [], "evaluation_interval": "1m", "tests": tests}))
    out = subprocess.run(["promtool", "test", "rules", str(spec)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_reward_collapse_rule_reads_the_windows_the_check_compares():
    expr = next(r for r in alert_rules() if r["alert"] == "AgentRewardCollapse")["expr"]
    windows = set(re.findall(r'window="([^"]+)"', expr))
    assert windows == {RECENT_WINDOW, BASELINE_WINDOW}
    assert f'agent_reward_rolling_std{{window="{BASELINE_WINDOW}"}}' in expr


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            for m in re.finditer(r"^#{1,6}\s+(.+)$", markdown, flags=re.M)}


def test_every_alert_links_to_its_runbook_section_in_the_readme():
    anchors = _anchors(README.read_text())
    for rule in alert_rules():
        url = rule["annotations"].get("runbook_url", "")
        assert url == f"README.md#{rule['alert'].lower()}", rule["alert"]
        assert url.split("#", 1)[1] in anchors, f"README has no section for {rule['alert']}"
        assert "/d/agent-pipeline-overview/" in rule["annotations"].get("dashboard_url", ""), rule["alert"]
