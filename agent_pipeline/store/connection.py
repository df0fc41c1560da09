"""Process-safe access to the project's DuckDB file.

DuckDB lets one process at a time hold a file (even a read-only open fails while another process writes), and
Dagster runs ops, runs and sensors in separate processes. So every access here takes an advisory ``flock`` on a
sidecar lock file, opens the database, does one short piece of work and closes it again: writers queue on the
lock instead of failing, and readers get a bounded wait (``StoreBusy``) they can turn into a skipped tick.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from agent_pipeline.safe_files import open_regular
from agent_pipeline.settings import pipeline_home

DB_FILE = "agent_pipeline.duckdb"
DEFAULT_WRITE_TIMEOUT_S = 120.0
_POLL_S = 0.005


class LockBusy(TimeoutError):
    """An advisory file lock could not be taken within the allowed time."""


class StoreBusy(LockBusy):
    """The store's lock could not be taken within the allowed time."""


@contextmanager
def file_lock(lock_path: Path, timeout_s: float, *, busy: type[LockBusy] = LockBusy,
              what: str = "lock") -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` for the block; raise ``busy`` after ``timeout_s`` of waiting."""
    fd = open_regular(lock_path, os.O_RDWR | os.O_CREAT)  # never a FIFO, device or followed link
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise busy(f"{lock_path}: {what} busy for more than {timeout_s:.3g} s") from None
                time.sleep(_POLL_S)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def time_window(start=None, end=None, column: str = "started_at") -> tuple[list[str], list]:
    """SQL conditions and parameters for a half-open time window ``[start, end)``; None leaves a side open."""
    conditions, params = [], []
    if start is not None:
        conditions.append(f"{column} >= ?")
        params.append(start)
    if end is not None:
        conditions.append(f"{column} < ?")
        params.append(end)
    return conditions, params


def has_table(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the table exists: readers of another domain's tables treat a missing one as "no data yet"."""
    return bool(conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()[0])


class Store:
    """One DuckDB file plus its lock. Cheap to construct; holds no connection between calls."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path is not None else pipeline_home() / DB_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._migrated: set[str] = set()

    @classmethod
    def at_home(cls, home: str | os.PathLike[str] | None = None) -> Store:
        return cls(pipeline_home(home) / DB_FILE)

    @contextmanager
    def connect(self, *, read_only: bool = False, timeout_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """Hold the lock and an open connection for the duration of the block.

        Keep the block short: every other process waits on it. ``read_only`` is for readers that must never
        write (sensors); it needs the file to exist, else ``FileNotFoundError``.
        """
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
    def transaction(self, *, timeout_s: float | None = None,
                    schema: tuple[str, list[str]] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside BEGIN/COMMIT; rolled back if the block raises.

        ``schema=(component, migrations)`` brings that component's tables up to date first, outside the
        transaction (migrations run transactions of their own).
        """
        with self.connect(timeout_s=timeout_s) as conn:
            if schema is not None:
                self.ensure_schema(conn, *schema)
            conn.execute("BEGIN TRANSACTION")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def ensure_schema(self, conn: duckdb.DuckDBPyConnection, component: str, migrations: list[str]) -> None:
        """Apply a component's forward migrations that this file has not seen yet (idempotent).

        Call it outside an open transaction: each pending script runs in a transaction of its own.
        """
        from agent_pipeline.store.migrations import migrate

        if component in self._migrated:
            return
        migrate(conn, component, migrations)
        self._migrated.add(component)


def query_df(conn: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    """Run a query and return a pandas DataFrame.

    duckdb's pandas conversion calls a pandas API that pandas 3 deprecates (Pandas4Warning on every fetch);
    the warning is about duckdb's internals, not ours, so it is silenced here, in one place.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*inplace keyword.*")
        warnings.filterwarnings("ignore", message=".*TIMESTAMP WITH TIME ZONE.*")
        return conn.execute(sql, params or []).df()
