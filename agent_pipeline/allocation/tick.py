"""The quota tick: which slots of the period are due now, across every agent, and the identities that make a tick
and a slot impossible to run twice.

A quota of q runs is spread evenly over the period (``allocation.schedule``). Every ``interval_seconds`` the tick
sensor asks ``plan_tick`` for the slots that came due since what it already launched (its cursor counts, per
agent, the slots launched this period) and launches them as one run. Three identities make it idempotent:

- the tick's run key, ``tick:<period>:<n>`` with n the tick window of the period (``tick_number``): a sensor
  evaluated twice in one window asks for the same key, and Dagster launches a key once;
- a slot's key, ``allocation:<agent>:<period>:<slot>`` (the run key the per-agent scheduler used), and the event
  id derived from it (``slot_event_id``): a slot's event is stored once (``agent_events.event_id`` is the primary
  key), whatever run carried it and however often it was retried;
- order keys derive from the event id (``trading.execution.order_key``), so a retried slot places nothing twice.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from agent_pipeline.allocation.schedule import due_slots, run_key, slot_time


def slot_key(agent: str, period_start: datetime, index: int) -> str:
    """The slot's identity: (period, agent, slot index)."""
    return run_key(agent, period_start, index)


def slot_event_id(key: str) -> str:
    """The event id of a slot's run: the same for every attempt at that slot, so the store keeps one."""
    return hashlib.sha256(f"slot|{key}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Slot:
    agent: str
    period_start: datetime
    index: int
    due_at: datetime

    @property
    def key(self) -> str:
        return slot_key(self.agent, self.period_start, self.index)

    @property
    def event_id(self) -> str:
        return slot_event_id(self.key)

    def as_config(self) -> dict:
        """The slot as the tick run's config carries it (plain strings and integers)."""
        return {"agent": self.agent, "index": self.index, "due_at": self.due_at.astimezone(UTC).isoformat()}


def tick_number(period_start: datetime, now: datetime, interval_seconds: int) -> int:
    """Which tick window of the period ``now`` falls in (0 from the period's start)."""
    return max(0, math.floor((now - period_start).total_seconds() / interval_seconds))


def tick_run_key(period_start: datetime, number: int) -> str:
    return f"tick:{period_start.astimezone(UTC):%Y%m%dT%H%MZ}:{number}"


@dataclass(frozen=True)
class TickPlan:
    slots: tuple[Slot, ...]
    launched: dict[str, int]  # per agent, slots launched this period including these
    held_back: int  # due slots left for the next tick by ``max_slots``


def plan_tick(period_start: datetime, period_minutes: int, quotas: Mapping[str, int], launched: Mapping[str, int],
              now: datetime, *, max_slots: int) -> TickPlan:
    """The slots due at ``now`` that are not launched yet, earliest first, at most ``max_slots`` of them.

    A prefix in due order keeps each agent's launched slots a contiguous prefix of its quota, so the cursor's
    counts stay the whole record. Quota 0 (or an agent without a quota) is due nothing.
    """
    pending: list[Slot] = []
    for agent, quota in sorted(quotas.items()):
        if quota is None or quota <= 0:
            continue
        done = max(0, int(launched.get(agent, 0)))
        for index in range(done, due_slots(period_start, period_minutes, quota, now)):
            pending.append(Slot(agent, period_start, index, slot_time(period_start, period_minutes, quota, index)))
    pending.sort(key=lambda s: (s.due_at, s.agent, s.index))
    chosen = pending[:max_slots]
    counts = {a: int(n) for a, n in launched.items() if a in quotas}
    for slot in chosen:
        counts[slot.agent] = slot.index + 1
    return TickPlan(tuple(chosen), counts, len(pending) - len(chosen))

