"""The first day of the agent_rewards partitions: what ``[reward.history] history_start`` says, or else the day of
the first stored event.

A fixed early date left a new install with hundreds of partitions that could never hold a reward. Reading the store
when the code location loads makes the partitions start where the history does: today on a new install, and
earlier once older history is imported (the code location picks it up when it loads again).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from agent_pipeline.store import Store, StoreBusy

EVENTS_TABLE = "agent_events"
FIRST_EVENT_SQL = f"SELECT min(started_at) AS first FROM {EVENTS_TABLE}"


def first_event_day(store: Store, timeout_s: float) -> date | None:
    """The UTC day of the oldest stored event, None with no store, no table or no event yet."""
    frame = store.read_frame(FIRST_EVENT_SQL, table=EVENTS_TABLE, columns=["first"], read_only=True,
                             timeout_s=timeout_s)
    if frame.empty or frame["first"].isna().all():
        return None
    first = frame["first"].iloc[0]
    return first.astimezone(UTC).date() if isinstance(first, datetime) else date.fromisoformat(str(first)[:10])


def history_start(configured: str | None, store: Store, today: date, timeout_s: float = 10.0) -> tuple[str, str]:
    """(first partition day YYYY-MM-DD, where it came from). The configured day wins; otherwise the first stored
    event's day, never after today. A store that stays busy for ``timeout_s`` gives yesterday, and says so: every
    process loads the location (each run process too), and the automation reprices yesterday and today, so those
    two partitions must exist in a process that could not read the store."""
    if configured:
        return configured, "[reward.history] history_start"
    try:
        first = first_event_day(store, timeout_s)
    except StoreBusy as exc:
        return ((today - timedelta(days=1)).isoformat(),
                f"yesterday: the store was busy when the code location loaded ({exc})")
    if first is None:
        return today.isoformat(), "today: no event stored yet"
    return min(first, today).isoformat(), "the first stored event's day"
