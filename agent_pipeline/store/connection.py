"""The store as the domains see it: one interface, whatever database is behind it.

Domains reach their tables only through a ``Store``: ``connect`` (a short, exclusive hold of a connection),
``transaction`` (the same inside BEGIN/COMMIT, optionally bringing a ``Schema`` up to date first), ``read_frame``
(a query as a DataFrame, empty when the store or the table does not exist yet), ``ensure`` (a component's
migrations), ``insert_frame`` (a DataFrame into a table in one statement), ``lock`` (a named cross-process
lock) and ``has_table``. They never import a database driver. ``Store(path_or_url)`` and
``open_store(path_or_url)`` pick the backend from the location: a path (or nothing: the file under
``$AGENT_PIPELINE_HOME``) is a DuckDB file (``agent_pipeline.store.duckdb_file``); another backend is one module
listed in ``BACKENDS`` under its URL scheme.

Domain SQL keeps to a portable subset where that is cheap: ``?`` parameters, ``INSERT ... ON CONFLICT DO
NOTHING``, explicit GROUP BY lists, ``information_schema`` for what exists. The PostgreSQL backend
(``store/postgres.py``) translates the rest of what the domains write (types, ``$name`` parameters, ``INSERT OR
REPLACE``, ``GROUP BY ALL``, the row functions below) and runs the rolling distributions in DuckDB over a bounded
copy (``analytical``). What remains DuckDB-specific, as written:

- connections follow DuckDB's Python API (``execute(sql, params)`` returning a result with ``fetchone``,
  ``fetchall`` and ``df``), which ``query_df`` and the DuckDB backend's ``insert_frame`` (``register``) rely on;
- ``isfinite()`` in the reward, allocation, breaker and metrics queries;
- the rolling reward distributions (``quantile_cont``, list functions, ``max_by`` with a count, ``$name``
  parameters), ``QUALIFY`` in the allocation's reward read, and the metrics rollup (arrays, ``epoch_us``,
  ``arg_max``);
- the importer reads files with DuckDB's own readers (``read_text``, ``read_blob``, JSON functions); on another
  backend it stages the file in an in-process DuckDB and copies rows in and out (``import_target.py``);
- ``DuckDBStore.path``, which the metrics snapshot still reads (whether the file exists, and its folder).
"""

from __future__ import annotations

import abc
import errno
import fcntl
import importlib
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from agent_pipeline.safe_files import open_regular
from agent_pipeline.settings import pipeline_home

if TYPE_CHECKING:
    import pandas as pd

    from agent_pipeline.store.migrations import Schema

DB_FILE = "agent_pipeline.duckdb"
DEFAULT_WRITE_TIMEOUT_S = 120.0
_POLL_S = 0.005

# URL scheme -> "module:class" of the backend; a location without a scheme is a DuckDB file path.
BACKENDS: dict[str, str] = {"duckdb": "agent_pipeline.store.duckdb_file:DuckDBStore",
                            "postgresql": "agent_pipeline.store.postgres:PostgresStore",
                            "postgres": "agent_pipeline.store.postgres:PostgresStore"}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


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


@contextmanager
def begin(conn) -> Iterator[Any]:
    """The block inside BEGIN/COMMIT on an open connection; rolled back if the block (or the commit) fails.

    If the rollback fails too (the database already ended the transaction), the original error is raised with
    a note saying so: it is the one that explains what went wrong.
    """
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException as exc:
        _rollback(conn, exc)
        raise
    try:
        conn.execute("COMMIT")
    except BaseException as exc:
        _rollback(conn, exc)
        raise


def _rollback(conn, cause: BaseException) -> None:
    try:
        conn.execute("ROLLBACK")
    except Exception as exc:  # noqa: BLE001 - the caller re-raises ``cause``
        cause.add_note(f"rollback failed as well: {type(exc).__name__}: {exc}")


def has_table(conn, name: str) -> bool:
    """Whether the table exists: readers of another domain's tables treat a missing one as "no data yet".

    A backend's connection may answer itself (PostgreSQL looks in the current schema only)."""
    own = getattr(conn, "has_table", None)
    if callable(own):
        return bool(own(name))
    return bool(conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()[0])


def insert_sql(table: str, columns: Sequence[str]) -> str:
    """``INSERT INTO table (columns) VALUES (?, ...)``: rows written by column name, never by position."""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


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


def query_df(conn, sql: str, params=None) -> pd.DataFrame:
    """Run a query and return a pandas DataFrame.

    duckdb's pandas conversion calls a pandas API that pandas 3 deprecates (Pandas4Warning on every fetch);
    the warning is about duckdb's internals, not ours, so it is silenced here, in one place.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*inplace keyword.*")
        warnings.filterwarnings("ignore", message=".*TIMESTAMP WITH TIME ZONE.*")
        return conn.execute(sql, params or []).df()


def database_errors() -> tuple[type[BaseException], ...]:
    """The exception classes the loaded backends raise for a failed statement (``DATABASE_ERRORS`` of each backend
    module already imported), so a reader can treat "this table does not answer" alike on every backend."""
    errors: list[type[BaseException]] = []
    for target in BACKENDS.values():
        module = sys.modules.get(target.split(":")[0])
        errors += getattr(module, "DATABASE_ERRORS", ())
    return tuple(errors)


def backend_for(location: str | os.PathLike[str] | None) -> type[Store]:
    """The ``Store`` class for a location: a URL names its backend by scheme, anything else is a DuckDB file."""
    match = _SCHEME.match(location) if isinstance(location, str) else None
    scheme = match.group(1).lower() if match else "duckdb"
    target = BACKENDS.get(scheme)
    if target is None:
        raise ValueError(f"store location {location!r}: no store backend for {scheme}:// URLs "
                         f"(known: {', '.join(f'{s}://' for s in sorted(BACKENDS))}; a path means a DuckDB file)")
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def open_store(location: str | os.PathLike[str] | None = None) -> Store:
    """The store at a path or URL; None is the DuckDB file under ``$AGENT_PIPELINE_HOME``."""
    return Store(location)


class Store(abc.ABC):
    """The interface every domain uses. Cheap to construct; holds no connection between calls.

    ``Store(path_or_url)`` builds the backend for the location (see ``backend_for``), as ``pathlib.Path`` builds
    the path class of the platform, so callers that only know a location never name a backend. A backend's
    constructor takes that location as its one argument and calls ``super().__init__()``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        backend = backend_for(args[0] if args else kwargs.get("path")) if cls is Store else cls
        return super().__new__(backend)

    def __init__(self) -> None:
        self._migrated: set[str] = set()

    @classmethod
    def at_home(cls, home: str | os.PathLike[str] | None = None) -> Store:
        return cls(pipeline_home(home) / DB_FILE)

    # -- what a backend provides ------------------------------------------------------------------------------
    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether the store has been created (readers of a store that does not exist yet see no data)."""

    shared: bool = False
    """Whether several hosts reach this store: then no state that goes with it may live on one host's disk (the
    kill switch, the metrics push state), it lives in the store's database instead."""

    @property
    def location(self) -> str:
        """Where the store is, fit to show (a URL without its password)."""
        return str(getattr(self, "path", type(self).__name__))

    @abc.abstractmethod
    def connect(self, *, read_only: bool = False, timeout_s: float | None = None, exclusive: bool = True):
        """A context manager holding an open connection (and the store's write lock) for the block.

        Keep the block short: other processes wait on it. ``read_only`` is for readers that must never write
        (sensors); it raises ``FileNotFoundError`` when the store does not exist. Raises ``StoreBusy`` after
        ``timeout_s`` (default ``DEFAULT_WRITE_TIMEOUT_S``) of waiting. ``exclusive=False`` says the block's
        writes need no serialisation against other writers (inserts under a unique key); a backend whose
        database serialises them itself may then let writers in side by side (the DuckDB file cannot).
        """

    @abc.abstractmethod
    def lock(self, name: str, timeout_s: float):
        """A context manager holding the cross-process lock ``name`` (letters, digits, ``_`` and ``-``) of this
        store; raises ``LockBusy`` after ``timeout_s``."""

    @abc.abstractmethod
    def insert_frame(self, conn, table: str, frame: pd.DataFrame, *, skip_conflicts: bool = False) -> int:
        """Insert every row of ``frame`` (its columns named as the table's) in one statement; returns the rows
        inserted. ``skip_conflicts`` leaves out rows whose key is already stored (``ON CONFLICT DO NOTHING``)."""

    # -- built on those ---------------------------------------------------------------------------------------
    def has_table(self, conn, name: str) -> bool:
        return has_table(conn, name)

    @contextmanager
    def analytical(self, conn, schema: Schema, rows: dict[str, tuple[str, Sequence[Any]]]) -> Iterator[Any]:
        """A DuckDB connection on which DuckDB's analytical SQL (lists, ``quantile_cont``, lambdas) can read
        ``schema``'s tables. ``rows[table]`` is a query (``SELECT * FROM table WHERE ...``) selecting at least the
        rows the analysis reads: a database that is not DuckDB copies them into an in-process DuckDB (a
        bounded window, never the whole history); the DuckDB file is already that, and answers itself."""
        yield conn

    def ensure(self, conn, schema: Schema) -> None:
        """Bring a component's tables, and those of the schemas it requires, up to date (once per store object).

        Call it outside an open transaction: each pending script runs in a transaction of its own.
        """
        from agent_pipeline.store.migrations import migrate  # migrations builds on this module

        for required in schema.requires:
            self.ensure(conn, required)
        if schema.component in self._migrated:
            return
        migrate(conn, schema.component, schema.migrations)
        self._migrated.add(schema.component)

    @contextmanager
    def transaction(self, *, timeout_s: float | None = None, schema: Schema | None = None) -> Iterator[Any]:
        """A connection inside BEGIN/COMMIT; rolled back if the block raises.

        ``schema`` brings that component's tables up to date first, outside the transaction (migrations run
        transactions of their own).
        """
        with self.connect(timeout_s=timeout_s) as conn:
            if schema is not None:
                self.ensure(conn, schema)
            with begin(conn):
                yield conn

    def read_frame(self, sql: str, params: Sequence[Any] | dict[str, Any] = (), *, table: str,
                   columns: Sequence[str], schema: Schema | None = None, read_only: bool = False,
                   timeout_s: float | None = None) -> pd.DataFrame:
        """``sql`` (which reads ``table``) as a DataFrame; with ``columns`` and no rows when the store or the table
        does not exist yet. A writable read brings ``schema`` up to date first; a read-only one never writes."""
        import pandas as pd

        if read_only and not self.exists():
            return pd.DataFrame(columns=list(columns))
        with self.connect(read_only=read_only, timeout_s=timeout_s) as conn:
            if schema is not None and not read_only:
                self.ensure(conn, schema)
            elif not self.has_table(conn, table):
                return pd.DataFrame(columns=list(columns))
            return query_df(conn, sql, params)
