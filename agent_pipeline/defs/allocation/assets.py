"""The ``allocator_quotas`` asset: decide each period's quotas and capital, on the loop's automation.

Automation materializes it as soon as reward_distributions first has data, then once per allocation period, and
only while reward_distributions' blocking checks pass (``agent_pipeline.defs.automation``). A materialization by
hand meets the same rule: the asset evaluates those checks again on the stored distributions before deciding.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg

from agent_pipeline.allocation import AllocationConfig
from agent_pipeline.allocation.decision import AgentInfo, decide, period_start_for
from agent_pipeline.allocation.report import EXPLANATION_COLUMNS, chart_markdown, explanation_rows, markdown_table
from agent_pipeline.allocation.tables import ALLOCATION, read_recent_rewards, write_decision
from agent_pipeline.defs.automation import downstream_condition, next_decision_due, period_cron
from agent_pipeline.defs.config_models import layered, run_overrides
from agent_pipeline.defs.resources import StoreResource
from agent_pipeline.defs.table_metadata import table_metadata
from agent_pipeline.reward import checks
from agent_pipeline.reward.config import CollapseConfig
from agent_pipeline.reward.distributions import read_distributions

ALLOCATOR_QUOTAS = dg.AssetKey("allocator_quotas")
REWARD_DISTRIBUTIONS = dg.AssetKey("reward_distributions")


AllocatorRunConfig = run_overrides(
    AllocationConfig, ("policy", "total_budget_runs", "seed", "total_capital_usd", "value_floor"),
    "AllocatorRunConfig", "Per-run overrides of the [allocation] table the code location loaded (unset keys keep "
    "its value; value_floor = -inf spends the whole budget).")


def failed_blocking_checks(distributions, collapse: CollapseConfig) -> list[str]:
    """The blocking checks of reward_distributions that fail on its stored rows: the same rules, from the same
    helpers, as the checks its materialization reported (so a materialization by hand is held back like the
    automation's)."""
    failed = []
    for name, outcome in (("reward_collapse", checks.reward_collapse(distributions, collapse)),
                          ("distributions_finite", checks.finite_distributions(distributions))):
        if not outcome.passed:
            failed.append(f"{name}: {outcome.description}")
    return failed


def build_allocator_quotas(loaded: AllocationConfig, agents: Sequence[AgentInfo],
                           collapse: CollapseConfig | None = None) -> dg.AssetsDefinition:
    """The asset deciding for ``agents`` (the registry's) with ``loaded`` (the ``[allocation]`` table the code
    location loaded) under the run config's overrides; ``collapse`` (the loaded ``[reward.collapse]``) is the rule
    of the blocking check it re-evaluates before deciding."""
    collapse = collapse or CollapseConfig()
    agents = sorted(agents, key=lambda a: a.name)
    cron = period_cron(loaded.period_minutes)

    @dg.asset(
        key=ALLOCATOR_QUOTAS,
        deps=[REWARD_DISTRIBUTIONS],
        group_name="allocation",
        kinds={"duckdb"},
        owners=["team:allocation"],
        tags={"domain": "allocation", "loop": "allocation"},
        automation_condition=downstream_condition(loaded.period_minutes),
        metadata={"dagster/table_name": "allocator_quotas", "decision_cron": f"{cron} UTC",
                  "period_minutes": loaded.period_minutes},
        description="Run quotas and capital per agent for the current period, decided by a constrained bandit "
                    "over each agent's recent rewards (policy from config.toml [allocation]). The budget is a "
                    "ceiling: runs beyond the minimums go only to agents whose value for the slot exceeds "
                    "value_floor (default 0.0), the rest are held back. Writes tables allocator_quotas (latest "
                    "period in force; per agent its status, slots won and estimate) and allocator_decisions (one "
                    "replayable JSON record per period). Decided on its own: first as soon as reward_distributions "
                    f"has data, then once per allocation period ({cron} UTC, after agent_rewards and "
                    "reward_distributions); never while a blocking check of reward_distributions fails. The "
                    "agent schedulers launch runs from the decision in force.",
    )
    def allocator_quotas(context: dg.AssetExecutionContext, config: AllocatorRunConfig,
                         store: StoreResource) -> dg.MaterializeResult:
        st = store.store()
        distributions = read_distributions(st, read_only=True, timeout_s=store.lock_timeout_s)
        failed = failed_blocking_checks(distributions, collapse)
        if failed:
            raise dg.Failure(description="reward_distributions fails a blocking check, so the previous quotas stay "
                                         "in force until rewards recover: " + "; ".join(failed))
        cfg = layered(loaded, config, "allocator_quotas run config")
        meta = {a.name: (a.kind, a.strategy) for a in agents}
        decided_at = datetime.now(UTC)
        period_start = period_start_for(decided_at, cfg.period_minutes)
        next_due = next_decision_due(decided_at, cfg.period_minutes)
        pairs, source = [], None
        if st.exists():  # no store yet: no rewards, every agent is explored
            with st.connect(read_only=True, timeout_s=store.lock_timeout_s) as conn:
                pairs, source = read_recent_rewards(conn, [a.name for a in agents], cfg.history_window,
                                                    decided_at, since=decided_at - timedelta(days=cfg.history_days))
        allocation, record = decide(cfg, agents, pairs, period_start)
        record["inputs"]["reward_table"] = source
        record["inputs"]["until"] = decided_at.isoformat()
        record["decided_at"] = decided_at.isoformat()
        with st.connect(timeout_s=store.lock_timeout_s) as conn:
            ALLOCATION.ensure(st, conn)
            write_decision(conn, period_start, decided_at, allocation, meta, record)
            table = table_metadata(conn, "allocator_quotas")
        context.log.info(f"period {period_start:%Y-%m-%d %H:%M}Z: quotas {allocation.quotas}, "
                         f"held back {allocation.held_back}, shortfall {allocation.shortfall}, "
                         f"capital {({a: round(c, 2) for a, c in allocation.capital.items()})}; "
                         f"next decision due {next_due:%Y-%m-%d %H:%M}Z")
        return dg.MaterializeResult(metadata={
            "period_start": period_start.isoformat(),
            "next_decision_due": f"{next_due:%Y-%m-%d %H:%M} UTC",
            "policy": cfg.policy,
            "seed": dg.MetadataValue.int(int(record["seed"])) if record.get("seed") is not None else "deterministic",
            "reward_table": source or "none yet",
            "rewards_observed": dg.MetadataValue.int(len(pairs)),
            "total_runs": dg.MetadataValue.int(sum(allocation.quotas.values())),
            "shortfall_runs": dg.MetadataValue.int(allocation.shortfall),
            "held_back_runs": dg.MetadataValue.int(allocation.held_back),
            "value_floor": (dg.MetadataValue.float(allocation.value_floor) if allocation.value_floor is not None
                            else "none: the budget is spent"),
            "explanation": explanation_table(allocation, meta),
            "capital_usd": dg.MetadataValue.float(round(float(sum(allocation.capital.values())), 2)),
            "undeployed_capital_usd": dg.MetadataValue.float(round(float(allocation.undeployed_capital_usd), 2)),
            "quotas": dg.MetadataValue.md(markdown_table(allocation, meta)),
            "chart": dg.MetadataValue.md(chart_markdown(allocation)),
            **table,
        })

    return allocator_quotas


def explanation_table(allocation, agents) -> dg.TableMetadataValue:
    """Per agent: status, slots won, the estimate and its interval, as a table the UI renders."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind, description)
                                     for name, kind, description in EXPLANATION_COLUMNS])
    return dg.MetadataValue.table([dg.TableRecord(row) for row in explanation_rows(allocation, agents)], schema)


allocator_quotas_job = dg.define_asset_job(
    "allocator_quotas_job", selection=[ALLOCATOR_QUOTAS],
    description="Decide the period's run quotas and capital now (materializes allocator_quotas); the automation "
                "does this once per allocation period on its own.")
