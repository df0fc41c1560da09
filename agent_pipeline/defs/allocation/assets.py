"""The ``allocator_quotas`` asset and its hourly schedule: decide each period's quotas and capital."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg

from agent_pipeline.allocation import AllocationConfig
from agent_pipeline.allocation.decision import AgentInfo, decide, period_start_for
from agent_pipeline.allocation.report import EXPLANATION_COLUMNS, chart_markdown, explanation_rows, markdown_table
from agent_pipeline.allocation.tables import ALLOCATION, read_recent_rewards, write_decision
from agent_pipeline.defs.config_models import layered, run_overrides
from agent_pipeline.defs.resources import StoreResource

ALLOCATOR_QUOTAS = dg.AssetKey("allocator_quotas")
REWARD_DISTRIBUTIONS = dg.AssetKey("reward_distributions")
REWARD_COLLAPSE = dg.AssetCheckKey(REWARD_DISTRIBUTIONS, "reward_collapse")


AllocatorRunConfig = run_overrides(
    AllocationConfig, ("policy", "total_budget_runs", "seed", "total_capital_usd", "value_floor"),
    "AllocatorRunConfig", "Per-run overrides of the [allocation] table the code location loaded (unset keys keep "
    "its value; value_floor = -inf spends the whole budget).")


def reward_collapse_failed(instance: dg.DagsterInstance) -> bool:
    """True when the latest completed ``reward_collapse`` check on reward_distributions failed."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as Status

    history = instance.event_log_storage.get_asset_check_execution_history(
        REWARD_COLLAPSE, limit=1, status={Status.SUCCEEDED, Status.FAILED})
    return bool(history) and history[0].status == Status.FAILED


def build_allocator_quotas(loaded: AllocationConfig, agents: Sequence[AgentInfo]) -> dg.AssetsDefinition:
    """The asset deciding for ``agents`` (the registry's) with ``loaded`` (the ``[allocation]`` table the code
    location loaded) under the run config's overrides."""
    agents = sorted(agents, key=lambda a: a.name)

    @dg.asset(
        key=ALLOCATOR_QUOTAS,
        deps=[REWARD_DISTRIBUTIONS],
        group_name="allocation",
        kinds={"duckdb"},
        description="Run quotas and capital per agent for the current period, decided by a constrained bandit "
                    "over each agent's recent rewards (policy from config.toml [allocation]). The budget is a "
                    "ceiling: runs beyond the minimums go only to agents whose value for the slot exceeds "
                    "value_floor (default 0.0), the rest are held back. Writes tables allocator_quotas (latest "
                    "period in force; per agent its status, slots won and estimate) and allocator_decisions (one "
                    "replayable JSON record per period). Refuses to decide while reward_distributions' blocking "
                    "check reward_collapse fails.",
    )
    def allocator_quotas(context: dg.AssetExecutionContext, config: AllocatorRunConfig,
                         store: StoreResource) -> dg.MaterializeResult:
        if reward_collapse_failed(context.instance):
            raise dg.Failure(description="reward_distributions' blocking check reward_collapse failed on its "
                                         "latest run: the previous quotas stay in force until rewards recover.")
        cfg = layered(loaded, config, "allocator_quotas run config")
        meta = {a.name: (a.kind, a.strategy) for a in agents}
        decided_at = datetime.now(UTC)
        period_start = period_start_for(decided_at, cfg.period_minutes)
        st = store.store()
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
        context.log.info(f"period {period_start:%Y-%m-%d %H:%M}Z: quotas {allocation.quotas}, "
                         f"held back {allocation.held_back}, shortfall {allocation.shortfall}, "
                         f"capital {allocation.capital}")
        return dg.MaterializeResult(metadata={
            "period_start": period_start.isoformat(),
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
            "capital_usd": dg.MetadataValue.float(float(sum(allocation.capital.values()))),
            "undeployed_capital_usd": dg.MetadataValue.float(float(allocation.undeployed_capital_usd)),
            "quotas": dg.MetadataValue.md(markdown_table(allocation, meta)),
            "chart": dg.MetadataValue.md(chart_markdown(allocation)),
        })

    return allocator_quotas


def explanation_table(allocation, agents) -> dg.TableMetadataValue:
    """Per agent: status, slots won, the estimate and its interval, as a table the UI renders."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind, description)
                                     for name, kind, description in EXPLANATION_COLUMNS])
    return dg.MetadataValue.table([dg.TableRecord(row) for row in explanation_rows(allocation, agents)], schema)


allocator_quotas_job = dg.define_asset_job(
    "allocator_quotas_job", selection=[ALLOCATOR_QUOTAS],
    description="Decide the period's run quotas and capital (materializes allocator_quotas).")

HOURLY_MINUTE = 10  # after the rewards domain's hourly reward_distributions (minute 5) and its checks


def period_cron(period_minutes: int) -> str:
    """A cron firing once per period: hourly periods at minute 10, shorter ones at their starts.

    Until a period's decision lands, the previous decision stays in force for it.
    """
    if period_minutes < 60:
        return f"*/{period_minutes} * * * *"
    hours = period_minutes // 60
    return f"{HOURLY_MINUTE} * * * *" if hours == 1 else f"{HOURLY_MINUTE} */{hours} * * *"


def build_schedule(period_minutes: int) -> dg.ScheduleDefinition:
    """The cron of ``period_minutes``: the same value the scheduler sensors spread each quota over."""
    return dg.ScheduleDefinition(
        name="allocator_quotas_schedule",
        job=allocator_quotas_job,
        cron_schedule=period_cron(period_minutes),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Materializes allocator_quotas once per allocation period (hourly by default, at minute 10, "
                    "after reward_distributions and its blocking checks), so each period's quotas and capital are "
                    "decided from the latest rewards; the agent schedulers launch runs from the decision in force.",
    )
