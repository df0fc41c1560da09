"""The DuckDB file backend: process-safe access to one DuckDB file.

DuckDB lets one process at a time hold a file (even a read-only open fails while another process writes), and
Dagster runs ops, runs and sensors in separate processes. So every access here takes an advisory ``flock`` on a
sidecar lock file, opens the database, does one short piece of work and closes it again: writers queue on the
lock instead of failing, and readers get a bounded wait (``StoreBusy``) they can turn into a skipped tick.
Named locks (``Store.lock``) are sidecar files of their own beside it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from agent_pipeline.settings import pipeline_home
from agent_pipeline.store.connection import DB_FILE, DEFAULT_WRITE_TIMEOUT_S, LockBusy, Store, StoreBusy, file_lock

DATABASE_ERRORS: tuple[type[BaseException], ...] = (duckdb.Error,)  # see connection.database_errors

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_URL_PREFIX = "duckdb://"


class DuckDBStore(Store):
    """One DuckDB file plus its lock. ``path`` is a file path or ``duckdb://<path>``; None is the home's file."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        super().__init__()
        if isinstance(path, str) and path.startswith(_URL_PREFIX):
            path = path[len(_URL_PREFIX):]
            if not path:
                raise ValueError(f"store URL {_URL_PREFIX!r} names no file")
        self.path = Path(path) if path is not None else pipeline_home() / DB_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def __repr__(self) -> str:
        return f"DuckDBStore({str(self.path)!r})"

    def exists(self) -> bool:
        return self.path.exists()

    @contextmanager
    def connect(self, *, read_only: bool = False, timeout_s: float | None = None,
                exclusive: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:  # a file has one writer anyway
        wait = DEFAULT_WRITE_TIMEOUT_S if timeout_s is None else timeout_s
        with file_lock(self.lock_path, wait, busy=StoreBusy, what="store"):
            if read_only and not self.path.exists():
                raise FileNotFoundError(f"{self.path}: no store yet")
            conn = duckdb.connect(str(self.path), read_only=read_only)
            try:
                conn.execute("SET TimeZone = 'UTC'")  # timestamps leave the store in UTC, whatever the host's zone
                yield conn
            finally:
                conn.close()

    @contextmanager
    def lock(self, name: str, timeout_s: float) -> Iterator[None]:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"lock name must be 1-64 letters, digits, '_' or '-', got {name!r}")
        with file_lock(self.path.with_name(f"{self.path.name}.{name}.lock"), timeout_s, busy=LockBusy,
                       what=f"{name} lock"):
            yield

    def insert_frame(self, conn, table: str, frame: pd.DataFrame, *, skip_conflicts: bool = False) -> int:
        if not _TABLE.fullmatch(table):
            raise ValueError(f"insert_frame: {table!r} is not a table name")
        columns = ", ".join('"' + str(c).replace('"', '""') + '"' for c in frame.columns)
        if not columns:
            raise ValueError(f"insert_frame into {table}: the frame has no columns")
        conflicts = " ON CONFLICT DO NOTHING" if skip_conflicts else ""
        conn.register("_insert_frame", frame)
        try:  # DuckDB reports the rows actually inserted
            inserted = conn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _insert_frame"
                                    f"{conflicts}").fetchone()[0]
        except BaseException:
            with contextlib.suppress(duckdb.Error):  # an aborted transaction refuses even this: the insert's error
                conn.unregister("_insert_frame")     # is the one to report
            raise
        conn.unregister("_insert_frame")
        return int(inserted)
