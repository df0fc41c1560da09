"""The agent_rewards (daily partitions, single-run backfills) and reward_distributions assets with their checks.

What is computed lives in ``agent_pipeline.reward``; this module says when, with which resources, and what the
UI shows.
"""

import warnings
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from agent_pipeline.defs.automation import downstream_condition, rewards_condition
from agent_pipeline.defs.config_models import layered
from agent_pipeline.defs.resources import RewardConfigResource, StoreResource
from agent_pipeline.defs.reward.resources import RewardRunConfig
from agent_pipeline.defs.table_metadata import frame_table, none_yet, rounded, table_metadata
from agent_pipeline.reward import checks
from agent_pipeline.reward.chart import boxplot_png, markdown_image
from agent_pipeline.reward.distributions import refresh_distributions, window_names
from agent_pipeline.reward.history import recompute_window
from agent_pipeline.store import query_df

AGENT_EVENTS = dg.AssetKey("agent_events")  # the events domain's root asset (docs/CONTRIBUTING.md)
AGENT_REWARDS = dg.AssetKey("agent_rewards")
REWARD_DISTRIBUTIONS = dg.AssetKey("reward_distributions")
GROUP = "rewards"
OWNERS = ["team:rewards"]
TAGS = {"domain": "rewards", "loop": "allocation"}
CHART_WINDOW = "7d"


def daily_partitions(history_start: str) -> dg.DailyPartitionsDefinition:
    """One partition per UTC day from [reward.history].history_start; today's (still filling) day included."""
    return dg.DailyPartitionsDefinition(start_date=history_start, timezone="UTC", end_offset=1)


def _check(spec: dg.AssetCheckSpec, outcome: checks.CheckOutcome,
           severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=spec.asset_key, check_name=spec.name, passed=outcome.passed, severity=severity,
        description=outcome.description,
        metadata={k: (rounded(v) if isinstance(v, (int, float, str, bool)) else dg.MetadataValue.json(v))
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


def agent_summary(frame: pd.DataFrame) -> dg.MetadataValue:
    """Per agent: events in the window by pricing, and their mean reward (a table the UI renders)."""
    if frame.empty:
        return none_yet("no events in this window")
    rows = []
    for agent, g in frame.groupby("agent"):
        counts = g["pricing"].value_counts()
        mean = g["reward"].mean()
        rows.append({"agent": agent, "events": len(g), "recomputed": int(counts.get("recomputed", 0)),
                     "recorded": int(counts.get("recorded", 0)), "failed": int(counts.get("failed", 0)),
                     "mean_reward": None if pd.isna(mean) else float(mean)})
    return frame_table(pd.DataFrame(rows))


def build_assets(partitions: dg.DailyPartitionsDefinition, period_minutes: int,
                 start_origin: str = "[reward.history] history_start") -> list[dg.AssetsDefinition]:
    """The two assets, materialized by the loop's automation once per allocation period of ``period_minutes``;
    ``backfill_policy`` is a beta parameter in Dagster 1.13, and we rely on it knowingly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _build_assets(partitions, period_minutes, start_origin)


def _build_assets(partitions: dg.DailyPartitionsDefinition, period_minutes: int,
                  start_origin: str) -> list[dg.AssetsDefinition]:
    first_day = partitions.get_first_partition_key()

    @dg.asset(
        key=AGENT_REWARDS,
        deps=[AGENT_EVENTS],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds={"duckdb"},
        owners=OWNERS,
        tags=TAGS,
        automation_condition=rewards_condition(period_minutes),
        check_specs=[REWARDS_FINITE, REWARDS_PLAUSIBLE, EVENTS_FRESH],
        description="Each event's reward under the current reward configuration, in the DuckDB table agent_rewards "
                    "(event_id, agent, strategy, kind, started_at, reward, pricing, params_hash, computed_at). "
                    "Recomputed from the stored raw output; imported events with only a reward keep it "
                    "(pricing 'recorded'). A backfill over any range deletes that window and inserts it "
                    "again, so changing a parameter and backfilling reprices history (run config: any [reward] key "
                    "for this run only, over the reward_config resource). Partitions: one per UTC day from "
                    f"{first_day} ({start_origin}). Materialized on its own: today's partition as soon as the "
                    "first events exist, then yesterday's and today's once per allocation period.",
        metadata={"dagster/table_name": "agent_rewards", "first_partition": first_day,
                  "first_partition_from": start_origin},
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
            table = table_metadata(conn, "agent_rewards")
            events_table = table_metadata(conn, "agent_events")
        # agent_events is written by every agent run; its size and columns are recorded here, once per period
        context.log_event(dg.AssetObservation(asset_key=AGENT_EVENTS, metadata=events_table))
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
                **table,
                "params_hash": result.params_hash,
                "reward_config": dg.MetadataValue.json(config.as_dict()),
                "per_agent": agent_summary(rows),
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
        owners=OWNERS,
        tags=TAGS,
        automation_condition=downstream_condition(period_minutes),
        check_specs=[REWARD_COLLAPSE, DISTRIBUTIONS_FINITE],
        description="Rolling reward distributions per agent (last hour, day, week and last N runs) in the DuckDB "
                    "table reward_distributions: n, mean, std, p05..p95, CVaR 5 %, win rate, error rate, mean "
                    "cost, p95 latency. Replaced as a whole on each materialization. Materialized on its own "
                    "after agent_rewards: first as soon as there are rewards, then once per allocation period; "
                    "its blocking checks hold allocator_quotas back.",
        metadata={"dagster/table_name": "reward_distributions"},
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
            "query_seconds": round(snap.seconds, 3),
            "chart": dg.MetadataValue.md(
                f"### Reward distribution per agent ({chart_window})\n\n"
                + markdown_image(boxplot_png(frame, chart_window), f"reward distributions {chart_window}")),
            "per_agent": distributions_table(frame),
        }
        with store.store().connect(read_only=True, timeout_s=store.lock_timeout_s) as conn:
            metadata.update(table_metadata(conn, "reward_distributions"))
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                _check(REWARD_COLLAPSE, checks.reward_collapse(frame, config.collapse)),
                _check(DISTRIBUTIONS_FINITE, checks.finite_distributions(frame)),
            ],
        )

    return [agent_rewards, reward_distributions]


DISTRIBUTION_COLUMNS = ("agent", "window", "runs", "n", "mean", "std", "p05", "p25", "p50", "p75", "p95", "cvar05",
                        "win_rate", "error_rate", "mean_cost_usd", "p95_latency_seconds")


def distributions_table(frame: pd.DataFrame) -> dg.MetadataValue:
    """One row per agent and window, as a table the UI renders (numbers rounded)."""
    if frame.empty:
        return none_yet("no reward history yet")
    return frame_table(frame.sort_values(["agent"], kind="stable"), DISTRIBUTION_COLUMNS,
                       descriptions={"n": "scored runs", "cvar05": "mean of the worst 5 %",
                                     "win_rate": "share of scored runs with reward > 0",
                                     "error_rate": "share of runs that failed"})
