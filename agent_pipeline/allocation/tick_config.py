"""The ``[tick]`` table: how often the quota tick runs and how many agent runs overlap inside one tick run.

    [tick]
    interval_seconds = 15        # one tick run per window at most; the slots due in it ride together
    max_slots_per_tick = 600     # more due slots than this wait for the next tick (earliest first)
    max_concurrent = 32          # agent slots running at once inside a tick run (threads of one process)
    agent_concurrency = 4        # slots of one agent running at once, unless overridden below
    agent_concurrency_overrides = { llm_news = 1 }
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_pipeline.config_fields import INT, INT_MAP, ConfigTable, setting


@dataclass(frozen=True)
class TickConfig(ConfigTable):
    SECTION = "[tick]"

    interval_seconds: int = setting(15, INT, ge=5, le=3_600, doc="seconds between tick runs (the sensor's interval)")
    max_slots_per_tick: int = setting(600, INT, ge=1, le=10_000, doc="due slots one tick run carries, at most")
    max_concurrent: int = setting(32, INT, ge=1, le=256, doc="agent slots running at once in a tick run")
    agent_concurrency: int = setting(4, INT, ge=1, le=256, doc="slots of one agent running at once")
    agent_concurrency_overrides: dict[str, int] = setting(kind=INT_MAP, factory=dict, ge=1,  # noqa: RUF009
                                                          le=256, doc="per-agent concurrency limits")

    def concurrency_of(self, agent: str) -> int:
        return self.agent_concurrency_overrides.get(agent, self.agent_concurrency)
