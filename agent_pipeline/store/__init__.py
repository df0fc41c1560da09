"""The DuckDB store: process-safe connections, forward migrations, and the agent_events table."""

from agent_pipeline.store.connection import DB_FILE, Store, StoreBusy, query_df
from agent_pipeline.store.events import AgentEvent, append_event, append_frame, read_events

__all__ = ["DB_FILE", "AgentEvent", "Store", "StoreBusy", "append_event", "append_frame", "query_df", "read_events"]
