"""The store: one interface over the database (DuckDB file by default), migrations per component, agent_events."""

from agent_pipeline.store.connection import (
                                             DB_FILE,
                                             LockBusy,
                                             Store,
                                             StoreBusy,
                                             begin,
                                             database_errors,
                                             file_lock,
                                             has_table,
                                             insert_sql,
                                             open_store,
                                             query_df,
                                             time_window,
)
from agent_pipeline.store.events import AgentEvent, append_event, append_frame, read_events
from agent_pipeline.store.migrations import Schema

__all__ = ["DB_FILE", "AgentEvent", "LockBusy", "Schema", "Store", "StoreBusy", "append_event", "append_frame",
           "begin", "database_errors", "file_lock", "has_table", "insert_sql", "open_store", "query_df", "read_events", "time_window"]
