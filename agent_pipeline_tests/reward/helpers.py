"""Building blocks for reward-history tests: events written straight into the store."""

from datetime import datetime

from agent_pipeline.store import Store
from agent_pipeline.store.events import EVENTS, AgentEvent, append_frame, events_frame


def ev(agent: str, at: datetime, *, strategy: str | None = None, output=None, reward=None, error=None,
       imported: bool = False, cost=None, latency: float = 0.1, event_id: str | None = None) -> AgentEvent:
    extra = {"event_id": event_id} if event_id else {}
    return AgentEvent(run_id="test", agent=agent, started_at=at, latency_seconds=latency, strategy=strategy,
                      kind="signal", cost_usd=cost, reward=reward, error=error,
                      error_type=None if error is None else "RuntimeError", output=output,
                      origin="imported" if imported else "computed",
                      source="import" if imported else "test", **extra)


def write_events(store: Store, events: list[AgentEvent]) -> None:
    with store.connect() as conn:
        EVENTS.ensure(store, conn)
    append_frame(store, events_frame(events))
