"""The metrics wire contract: names, types, labels and buckets that Grafana and the alert rules read.

The prototype's metrics keep their names and buckets; latency is in seconds (the prototype's ms buckets divided by
1000), as Prometheus naming asks, with finer bounds below 50 ms added so that fast agents' quantiles resolve (with
0.05 as the lowest bound every agent under 50 ms read a p95 of ~47.5 ms). ``PROTOTYPE_METRIC_NAMES`` is the mapping
the README shows.
"""

from __future__ import annotations

from dataclasses import dataclass

PROTOTYPE_LATENCY_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, *PROTOTYPE_LATENCY_BUCKETS)
COST_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
REWARD_BUCKETS: tuple[float, ...] = (-2.0, -1.0, -0.5, -0.2, 0.0, 0.1, 0.2, 0.5, 1.0, 2.0)

DEFAULT_JOB = "agent_pipeline"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()


@dataclass(frozen=True)
class HistogramSpec:
    """A histogram computed from one column of agent_events."""

    name: str
    column: str
    buckets: tuple[float, ...]
    help: str


HISTOGRAMS: tuple[HistogramSpec, ...] = (
    HistogramSpec("agent_latency_seconds", "latency_seconds", LATENCY_BUCKETS, "Agent run latency (seconds)."),
    HistogramSpec("agent_cost_usd", "cost_usd", COST_BUCKETS, "Agent run cost (USD); runs of unknown cost are not observed."),
    HistogramSpec("agent_reward", "reward", REWARD_BUCKETS, "Agent run reward; failed runs have no reward and are not observed."),
)

METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("agent_runs_total", "counter", ("agent",), "Live agent runs recorded in agent_events (imported history is not counted)."),
    MetricSpec("agent_errors_total", "counter", ("agent",), "Agent runs that ended in an error."),
    *(MetricSpec(h.name, "histogram", ("agent",), h.help, h.buckets) for h in HISTOGRAMS),
    MetricSpec("agent_last_reward", "gauge", ("agent",), "Reward of the agent's most recent scored live run (by start time)."),
    MetricSpec("agent_last_cost_usd", "gauge", ("agent",), "Cost (USD) of the agent's most recent priced live run (by start time)."),
    MetricSpec("agent_last_latency_seconds", "gauge", ("agent",), "Latency (seconds) of the agent's most recent live run (by start time)."),
    MetricSpec("agent_last_run_timestamp_seconds", "gauge", ("agent",), "Start time (Unix seconds) of the agent's most recent live run (imported history is no evidence)."),
    MetricSpec("agent_reward_rolling_mean", "gauge", ("agent", "window"), "Rolling mean reward per agent (reward_distributions)."),
    MetricSpec("agent_reward_win_rate", "gauge", ("agent", "window"), "Rolling share of runs with positive reward (reward_distributions)."),
    MetricSpec("agent_reward_rolling_std", "gauge", ("agent", "window"), "Rolling sample standard deviation of reward (reward_distributions; absent below 2 runs)."),
    MetricSpec("agent_reward_rolling_runs", "gauge", ("agent", "window"), "Scored runs (finite rewards) in the rolling window (reward_distributions n)."),
    MetricSpec("agent_reward_collapse_min_runs", "gauge", (), "[reward.collapse] min_runs: scored runs each window needs before a collapse is judged."),
    MetricSpec("agent_reward_collapse_drop_std", "gauge", (), "[reward.collapse] drop_std: allowed drop in baseline standard deviations."),
    MetricSpec("agent_reward_collapse_min_drop", "gauge", (), "[reward.collapse] min_drop: smallest drop of the mean reward that counts as a collapse."),
    MetricSpec("agent_reward_collapse_floor", "gauge", (), "[reward.collapse] floor: a last-hour mean reward below it collapses (absent when unset)."),
    MetricSpec("allocator_quota_runs", "gauge", ("agent",), "Runs allotted to the agent in the allocation period in force."),
    MetricSpec("allocator_capital_usd", "gauge", ("agent",), "Capital (USD) allotted to the agent in the allocation period in force."),
    MetricSpec("allocator_period_seconds", "gauge", (), "Length of an allocation period ([allocation] period_minutes, in seconds)."),
    MetricSpec("allocator_decided_at_timestamp_seconds", "gauge", (), "When the quotas in force were decided (Unix seconds)."),
    MetricSpec("agent_expected_run_interval_seconds", "gauge", ("agent",), "Seconds between the agent's runs its quota asks for (period / quota); absent for quota 0."),
    MetricSpec("trading_kill_switch_engaged", "gauge", (), "1 while the persisted kill switch is engaged, else 0."),
    MetricSpec("trading_kill_switch_state", "gauge", ("state",), "1 for the kill switch's current state (ACTIVE | REDUCING | HALTED), 0 for the others."),
    MetricSpec("trading_gate_decisions_total", "counter", ("agent", "outcome"), "Execution-gate decisions (approved | denied)."),
    MetricSpec("trading_guardrail_denials_total", "counter", ("agent", "reason_code"), "Execution-gate denials by stable reason code."),
    MetricSpec("trading_orders_total", "counter", ("agent",), "Orders placed with the paper broker."),
    MetricSpec("trading_fills_total", "counter", ("agent",), "Fills received from the paper broker."),
    MetricSpec("trading_realized_pnl_usd", "gauge", ("period",), "Realized PnL (USD): period=\"today\" (the current UTC date; 0 when nothing filled today) and \"cumulative\"."),
    MetricSpec("agent_pipeline_metrics_snapshot_timestamp_seconds", "gauge", (), "When this snapshot was computed from the store (Unix seconds)."),
    MetricSpec("agent_pipeline_metrics_snapshot_age_seconds", "gauge", (), "Age (seconds) of the store values in this exposition: 0 when computed for it, more when the store was busy and the last good snapshot is served."),
    MetricSpec("agent_pipeline_metrics_snapshot_fresh", "gauge", (), "1 when this exposition's store values were computed for it, 0 when they are the last good snapshot's (the kill switch is always read fresh)."),
    MetricSpec("agent_pipeline_metrics_pushes_total", "counter", (), "Snapshots pushed to the Pushgateway before this one."),
    MetricSpec("agent_pipeline_metrics_push_failures_total", "counter", (), "Pushes that failed (gateway down or slow) before this one."),
)

BY_NAME: dict[str, MetricSpec] = {m.name: m for m in METRICS}


@dataclass(frozen=True)
class Sample:
    """One value of one metric (``name`` as in ``METRICS``; ``labels`` as (label, value) pairs)."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

# What a prototype user's queries used -> what we export.
PROTOTYPE_METRIC_NAMES: dict[str, str] = {
    "agent_runs_total": "agent_runs_total",
    "agent_errors_total": "agent_errors_total",
    "agent_latency_ms": "agent_latency_seconds (buckets /1000)",
    "agent_cost_usd": "agent_cost_usd",
    "agent_reward": "agent_reward",
    "agent_last_reward": "agent_last_reward",
    "agent_last_cost_usd": "agent_last_cost_usd",
    "agent_last_latency_ms": "agent_last_latency_seconds",
}


def exported_series_names() -> set[str]:
    """Every sample name that can appear in our exposition (histograms expand to _bucket/_sum/_count)."""
    names: set[str] = set()
    for m in METRICS:
        if m.kind == "histogram":
            names |= {f"{m.name}_bucket", f"{m.name}_sum", f"{m.name}_count"}
        else:
            names.add(m.name)
    return names
