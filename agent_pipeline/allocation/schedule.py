"""When each run of a period is due: a quota of q runs is spread evenly over the period, the first at its start.

The tick sensor asks ``due_slots`` (through ``allocation.tick.plan_tick``) on every tick and launches the slots
that came due since its cursor; a slot's key names the agent, the period and the slot, and its event id derives
from it, so a slot is stored once however often it is launched.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def slot_time(period_start: datetime, period_minutes: int, quota: int, slot: int) -> datetime:
    return period_start + timedelta(minutes=period_minutes) * (slot / quota)


def due_slots(period_start: datetime, period_minutes: int, quota: int, now: datetime) -> int:
    """How many of the period's ``quota`` slots are due at ``now`` (0 before the period, ``quota`` after)."""
    if quota <= 0 or now < period_start:
        return 0
    elapsed = (now - period_start) / timedelta(minutes=period_minutes)
    return min(quota, int(elapsed * quota) + 1)


def run_key(agent: str, period_start: datetime, slot: int) -> str:
    return f"allocation:{agent}:{period_start.astimezone(UTC):%Y%m%dT%H%MZ}:{slot}"
