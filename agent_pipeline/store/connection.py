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

from agent_pipeline.settings import pipeline_home

DB_FILE = "agent_pipeline.duckdb"
DEFAULT_WRITE_TIMEOUT_S = 120.0
_POLL_S = 0.005


class StoreBusy(TimeoutError):
    """The store's lock could not be taken within the allowed time."""


@contextmanager
def _flock(lock_path: Path, timeout_s: float) -> Iterator[None]:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
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
                    raise StoreBusy(f"{lock_path}: store busy for more than {timeout_s:.3g} s") from None
                time.sleep(_POLL_S)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


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
        with _flock(self.lock_path, wait):
            if read_only and not self.path.exists():
                raise FileNotFoundError(f"{self.path}: no store yet")
            conn = duckdb.connect(str(self.path), read_only=read_only)
            try:
                yield conn
            finally:
                conn.close()

    @contextmanager
    def transaction(self, *, timeout_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside BEGIN/COMMIT; rolled back if the block raises."""
        with self.connect(timeout_s=timeout_s) as conn:
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
