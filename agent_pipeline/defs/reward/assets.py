"""The agent_rewards (daily partitions, single-run backfills) and reward_distributions assets with their checks.

What is computed lives in ``agent_pipeline.reward``; this module says when, with which resources, and what the
UI shows.
"""

import warnings
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from agent_pipeline.defs.config_models import layered
from agent_pipeline.defs.resources import RewardConfigResource, StoreResource
from agent_pipeline.defs.reward.resources import RewardRunConfig
from agent_pipeline.reward import checks
from agent_pipeline.reward.chart import boxplot_png, markdown_image
from agent_pipeline.reward.distributions import refresh_distributions, window_names
from agent_pipeline.reward.history import recompute_window
from agent_pipeline.store import query_df

AGENT_EVENTS = dg.AssetKey("agent_events")  # the events domain's root asset (docs/CONTRIBUTING.md)
AGENT_REWARDS = dg.AssetKey("agent_rewards")
REWARD_DISTRIBUTIONS = dg.AssetKey("reward_distributions")
GROUP = "rewards"
CHART_WINDOW = "7d"


def daily_partitions(history_start: str) -> dg.DailyPartitionsDefinition:
    """One partition per UTC day from [reward.history].history_start; today's (still filling) day included."""
    return dg.DailyPartitionsDefinition(start_date=history_start, timezone="UTC", end_offset=1)


def _check(spec: dg.AssetCheckSpec, outcome: checks.CheckOutcome,
           severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=spec.asset_key, check_name=spec.name, passed=outcome.passed, severity=severity,
        description=outcome.description,
        metadata={k: (v if isinstance(v, (int, float, str, bool)) else dg.MetadataValue.json(v))
                  for k, v in outcome.metadata.items()},
    )


REWARDS_FINITE = dg.AssetCheckSpec(
    "rewards_finite", asset=AGENT_REWARDS, blocking=True,
    description="No NaN or infinite reward in the rewritten window (NULL is a failed run, not a number).")
REWARDS_PLAUSIBLE = dg.AssetCheckSpec(
    "rewards_plausible_range", asset=AGENT_REWARDS,
    description="Every reward in the rewritten window lies within [min_reward, max_reward] of [reward.history].")
EVENTS_FRESH = dg.AssetCheckSpec(
    "newest_event_fresh", asset=AGENT_REWARDS,
    description="The newest agent event is at most freshness_hours old (agents are running and being recorded).")
REWARD_COLLAPSE = dg.AssetCheckSpec(
    "reward_collapse", asset=REWARD_DISTRIBUTIONS, blocking=True,
    description="Fails when an agent's reward collapsed by the rule of [reward.collapse], judged on the repriced "
                "rewards: its last-hour mean below its last-week mean by more than max(drop_std x std, min_drop) "
                "over at least min_runs runs in each window, or below floor when set; allocation must not build "
                "on it.")
DISTRIBUTIONS_FINITE = dg.AssetCheckSpec(
    "distributions_finite", asset=REWARD_DISTRIBUTIONS, blocking=True,
    description="No infinite statistic in reward_distributions.")


def _agent_summary_md(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_no events in this window_"
    lines = ["| agent | events | recomputed | recorded | failed | mean reward |", "|---|---:|---:|---:|---:|---:|"]
    for agent, g in frame.groupby("agent"):
        counts = g["pricing"].value_counts()
        mean = g["reward"].mean()
        lines.append(f"| {agent} | {len(g)} | {counts.get('recomputed', 0)} | {counts.get('recorded', 0)} | "
                     f"{counts.get('failed', 0)} | {'' if pd.isna(mean) else f'{mean:.4f}'} |")
    return "\n".join(lines)


def build_assets(partitions: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The two assets; ``backfill_policy`` is a beta parameter in Dagster 1.13, and we rely on it knowingly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _build_assets(partitions)


def _build_assets(partitions: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        key=AGENT_REWARDS,
        deps=[AGENT_EVENTS],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds={"duckdb"},
        check_specs=[REWARDS_FINITE, REWARDS_PLAUSIBLE, EVENTS_FRESH],
        description="Each event's reward under the current reward configuration, in the DuckDB table agent_rewards "
                    "(event_id, agent, strategy, kind, started_at, reward, pricing, params_hash, computed_at). "
                    "Recomputed from the stored raw output; imported events with only a reward keep it "
                    "(pricing 'recorded'). A backfill over any range deletes that window and inserts it "
                    "again, so changing a parameter and backfilling reprices history (run config: any [reward] key "
                    "for this run only, over the reward_config resource).",
        metadata={"table": "agent_rewards"},
    )
    def agent_rewards(context: dg.AssetExecutionContext, config: RewardRunConfig, store: StoreResource,
                      reward_config: RewardConfigResource) -> dg.MaterializeResult:
        window = context.partition_time_window  # a range in a single-run backfill: never partition_key
        config = layered(reward_config.config(), config, "agent_rewards run config")
        db = store.store()
        result = recompute_window(db, window.start, window.end, config, timeout_s=store.lock_timeout_s)
        context.log.info(result.summary())
        with db.connect(timeout_s=store.lock_timeout_s) as conn:
            finite = checks.finite_rewards(conn, result.start, result.end)
            plausible = checks.plausible_range(conn, config.history, result.start, result.end)
            fresh = checks.freshness(conn, config.history, datetime.now(UTC))
            rows = query_df(conn, "SELECT agent, reward, pricing FROM agent_rewards "
                                  "WHERE started_at >= ? AND started_at < ?", [result.start, result.end])
            total = conn.execute("SELECT count(*) FROM agent_rewards").fetchone()[0]
        keys = context.partition_keys
        return dg.MaterializeResult(
            metadata={
                "window": f"{result.start:%Y-%m-%d %H:%M} .. {result.end:%Y-%m-%d %H:%M} UTC",
                "partitions": len(keys),
                "rows_in_window": result.inserted,
                "rows_replaced": result.deleted,
                "rewards_changed": result.changed,
                "recomputed": result.by_pricing.get("recomputed", 0),
                "recorded_kept": result.by_pricing.get("recorded", 0),
                "failed_runs": result.by_pricing.get("failed", 0),
                "dropped_non_finite": result.by_pricing.get("invalid", 0),
                "unusable_outputs": result.by_pricing.get("unusable_output", 0),  # unreadable or past the caps: 0.0
                "rows_in_table": int(total),
                "params_hash": result.params_hash,
                "reward_config": dg.MetadataValue.json(config.as_dict()),
                "per_agent": dg.MetadataValue.md(_agent_summary_md(rows)),
            },
            check_results=[
                _check(REWARDS_FINITE, finite),
                _check(REWARDS_PLAUSIBLE, plausible),
                _check(EVENTS_FRESH, fresh, dg.AssetCheckSeverity.WARN),
            ],
        )

    @dg.asset(
        key=REWARD_DISTRIBUTIONS,
        deps=[AGENT_REWARDS],
        group_name=GROUP,
        kinds={"duckdb"},
        check_specs=[REWARD_COLLAPSE, DISTRIBUTIONS_FINITE],
        description="Rolling reward distributions per agent (last hour, day, week and last N runs) in the DuckDB "
                    "table reward_distributions: n, mean, std, p05..p95, CVaR 5 %, win rate, error rate, mean "
                    "cost, p95 latency. Replaced as a whole on each materialization; what the allocator reads.",
        metadata={"table": "reward_distributions"},
    )
    def reward_distributions(context: dg.AssetExecutionContext, config: RewardRunConfig, store: StoreResource,
                             reward_config: RewardConfigResource) -> dg.MaterializeResult:
        config = layered(reward_config.config(), config, "reward_distributions run config")
        snap = refresh_distributions(store.store(), last_n_runs=config.history.last_n_runs,
                                     timeout_s=store.lock_timeout_s)
        frame = snap.frame
        context.log.info(f"{len(frame)} distribution rows over {snap.events} events in {snap.seconds:.3f} s")
        windows = window_names(config.history.last_n_runs)
        chart_window = CHART_WINDOW if (frame[frame["window"] == CHART_WINDOW]["n"] > 0).any() else \
            windows[-1]
        metadata: dict[str, object] = {
            "rows": len(frame),
            "agents": int(frame["agent"].nunique()) if not frame.empty else 0,
            "events_in_history": snap.events,
            "history_covered": (f"{snap.first_event:%Y-%m-%d %H:%M} .. {snap.last_event:%Y-%m-%d %H:%M} UTC"
                                if snap.first_event is not None else "no events"),
            "as_of": snap.as_of.isoformat(),
            "windows": ", ".join(windows),
            "query_seconds": round(snap.seconds, 4),
            "chart": dg.MetadataValue.md(
                f"### Reward distribution per agent ({chart_window})\n\n"
                + markdown_image(boxplot_png(frame, chart_window), f"reward distributions {chart_window}")),
            "per_agent": dg.MetadataValue.md(distributions_markdown(frame)),
        }
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                _check(REWARD_COLLAPSE, checks.reward_collapse(frame, config.collapse)),
                _check(DISTRIBUTIONS_FINITE, checks.finite_distributions(frame)),
            ],
        )

    return [agent_rewards, reward_distributions]


def _cell(value: object, fmt: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return format(value, fmt) if isinstance(value, float) else str(value)


def distributions_markdown(frame: pd.DataFrame) -> str:
    """One markdown table per agent, one row per window."""
    if frame.empty:
        return "_no reward history yet_"
    parts = []
    for agent, g in frame.groupby("agent", sort=True):
        parts.append(f"#### {agent}\n")
        parts.append("| window | runs | n | mean | std | p05 | p25 | p50 | p75 | p95 | CVaR 5% | win rate | "
                     "error rate | mean cost USD | p95 latency s |")
        parts.append("|---|" + "---:|" * 14)
        for r in g.itertuples(index=False):
            parts.append("| " + " | ".join([
                str(r.window), str(r.runs), str(r.n), _cell(r.mean), _cell(r.std), _cell(r.p05), _cell(r.p25),
                _cell(r.p50), _cell(r.p75), _cell(r.p95), _cell(r.cvar05), _cell(r.win_rate, ".1%"),
                _cell(r.error_rate, ".1%"), _cell(r.mean_cost_usd, ".5f"), _cell(r.p95_latency_seconds, ".3f"),
            ]) + " |")
        parts.append("")
    return "\n".join(parts)
