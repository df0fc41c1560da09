"""The DuckDB store: process-safe connections, forward migrations, and the agent_events table."""

from agent_pipeline.store.connection import (DB_FILE, LockBusy, Store, StoreBusy, file_lock, has_table, query_df,
                                             time_window)
from agent_pipeline.store.events import AgentEvent, append_event, append_frame, read_events

__all__ = ["DB_FILE", "AgentEvent", "LockBusy", "Store", "StoreBusy", "append_event", "append_frame", "file_lock",
           "has_table", "query_df", "read_events", "time_window"]
