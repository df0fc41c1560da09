"""Wrap one agent run and turn whatever happens into exactly one event.

Latency is wall-clock around ``run``; a raise, a timeout, an output of the wrong shape, a NaN profit or a bad cost
all become an error event with a message that says which, never a silent zero. A successful run is priced with
the capital-weighted reward under its strategy's risk budget.
"""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import UTC, datetime
from typing import Any

from agent_pipeline.agents.protocol import AgentContext, AgentResult
from agent_pipeline.agents.registry import LoadedAgent
from agent_pipeline.numbers import finite_number
from agent_pipeline.reward import RewardConfig, score_output
from agent_pipeline.store.events import AgentEvent


class AgentOutputError(ValueError):
    """The agent returned something the pipeline cannot score or store."""


class AgentTimeout(TimeoutError):
    """The agent did not finish within its configured timeout."""


def _number_or_error(item: dict, key: str, where: str) -> None:
    if key not in item:
        return
    value = item[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AgentOutputError(f"{where}[{key!r}] must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise AgentOutputError(f"{where}[{key!r}] must be finite, got {value!r}")


def normalize_result(raw: Any) -> tuple[list[dict[str, Any]], float | None]:
    """Check an agent's return value and split it into (output, cost_usd)."""
    if isinstance(raw, AgentResult):
        output, cost = raw.output, raw.cost_usd
    else:
        output, cost = raw, None
    if not isinstance(output, list):
        raise AgentOutputError(f"output must be a list of dicts, got {type(output).__name__}")
    for i, item in enumerate(output):
        if not isinstance(item, dict):
            raise AgentOutputError(f"output[{i}] must be a dict, got {type(item).__name__}")
        for key in ("profit_pct", "notional_usd", "expected_edge_bps", "confidence", "data_age_sec"):
            _number_or_error(item, key, f"output[{i}]")
    try:
        json.dumps(output, allow_nan=False, default=str)
    except (TypeError, ValueError) as exc:
        raise AgentOutputError(f"output is not JSON-serialisable: {exc}") from exc
    if cost is not None:
        number = finite_number(cost)
        if number is None or number < 0:
            raise AgentOutputError(f"cost_usd must be a finite non-negative number or None, got {cost!r}")
        cost = number
    return output, cost


def _call_with_timeout(agent: LoadedAgent, ctx: AgentContext) -> Any:
    timeout = agent.spec.timeout_sec
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = agent.agent.run(ctx)
        except BaseException as exc:  # handed back to the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"agent-{agent.name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise AgentTimeout(f"agent {agent.name!r} did not finish within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("result")


def _max_data_age(output: list[dict[str, Any]]) -> float | None:
    ages = [float(o["data_age_sec"]) for o in output if isinstance(o.get("data_age_sec"), (int, float))]
    return max(ages) if ages else None


def run_instrumented(agent: LoadedAgent, ctx: AgentContext, reward_config: RewardConfig,
                     *, source: str = "dagster") -> AgentEvent:
    """Run the agent once and return its event; never raises for anything the agent does."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    output: Any = None
    cost: float | None = None
    error: BaseException | None = None
    try:
        output, cost = normalize_result(_call_with_timeout(agent, ctx))
    except Exception as exc:
        error = exc
    latency = time.perf_counter() - t0
    if error is not None:
        return error_event(agent, ctx.run_id, error, started, latency, source=source)
    reward, capital, max_loss = score_output(agent.name, agent.strategy, output, reward_config, cost_usd=cost)
    return AgentEvent(run_id=ctx.run_id, agent=agent.name, strategy=agent.strategy, kind=agent.kind,
                      started_at=started, latency_seconds=latency, source=source, cost_usd=cost, reward=reward,
                      output=output, capital_usd=capital, max_loss_usd=max_loss, data_age_sec=_max_data_age(output))


def error_event(agent: LoadedAgent, run_id: str, error: BaseException, started: datetime, latency: float,
                *, source: str = "dagster") -> AgentEvent:
    """The event of a failed run: the error's type and message, no reward, no output."""
    return AgentEvent(run_id=run_id, agent=agent.name, strategy=agent.strategy, kind=agent.kind,
                      started_at=started, latency_seconds=latency, source=source, reward=None,
                      error=f"{type(error).__name__}: {error}", error_type=type(error).__name__)
