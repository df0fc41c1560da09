"""Where an import stages its file and how it meets the store, per backend; the classification is the same.

- The DuckDB file is itself a DuckDB: the file is staged in temporary tables of the store's own connection, the
  bounded copies are local queries, and the rows are written with ``INSERT ... SELECT``.
- Any other database (PostgreSQL): the file is staged in an in-process DuckDB before the store is reached (so a
  refused file never connects, and creates nothing), the bounded copies are queries on the store that join a
  temporary table of the staged keys, and the rows are written with ``COPY``. Rows travel as CSV files DuckDB
  writes and reads itself: as Python tuples (``copy_rows``) a million rows took half as long again (BENCHMARKS.md).

Either way ``connect()`` holds the store's write lock from the first read of the store's rows to the commit, so two
processes importing the same file at once insert it once.
"""

from __future__ import annotations

import abc
import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from agent_pipeline.store.connection import Store, database_errors
from agent_pipeline.store.duckdb_file import DuckDBStore
from agent_pipeline.store.import_classify import StoreRows


class Target(abc.ABC):
    """The staging connection (``local``, a DuckDB) and, inside ``connect()``, the store's (``store_conn``)."""

    local: duckdb.DuckDBPyConnection
    store_conn: Any

    def __init__(self, store: Store, local: duckdb.DuckDBPyConnection):
        self.store = store
        self.local = local
        self.store_conn = None

    @abc.abstractmethod
    def connect(self):
        """A context manager: the store's connection, holding its write lock for the block."""

    @abc.abstractmethod
    def fetch(self, rows: StoreRows, params: Sequence[Any] = ()) -> None:
        """Create the local table ``rows.table`` holding what ``rows.query`` selects from the store."""

    @abc.abstractmethod
    def write(self, table: str, columns: Sequence[str], select: str, params: Sequence[Any] = ()) -> int:
        """Insert into the store's ``table`` the rows of the local query ``select``; return how many."""


class _SameDatabase(Target):
    """The DuckDB file store: staging beside the store's tables, in its connection."""

    @contextmanager
    def connect(self) -> Iterator[Any]:
        self.store_conn = self.local
        yield self.local

    def fetch(self, rows: StoreRows, params: Sequence[Any] = ()) -> None:
        self.local.execute(f"CREATE TEMP TABLE {rows.table} ({rows.columns})")
        self.local.execute(f"INSERT INTO {rows.table} {rows.query.format(keys=rows.keys)}", list(params))

    def write(self, table: str, columns: Sequence[str], select: str, params: Sequence[Any] = ()) -> int:
        return int(self.local.execute(f"INSERT INTO {table} ({', '.join(columns)}) {select}",
                                      list(params)).fetchone()[0])


class _CopiedRows(Target):
    """A database store (PostgreSQL): staging in an in-process DuckDB; rows move both ways as CSV files that DuckDB
    writes and reads and the database copies (``copy_csv_in``, ``copy_csv_out``), never row by row in Python."""

    def __init__(self, store: Store, local: duckdb.DuckDBPyConnection, folder: Path):
        super().__init__(store, local)
        self.folder = folder

    @contextmanager
    def connect(self) -> Iterator[Any]:
        with self.store.connect() as conn:
            self.store_conn = conn
            try:
                yield conn
            finally:
                self.store_conn = None

    def fetch(self, rows: StoreRows, params: Sequence[Any] = ()) -> None:
        self.local.execute(f"CREATE TEMP TABLE {rows.table} ({rows.columns})")
        if rows.keys is None:
            self._copy_in(rows, params)
            return
        if not self.local.execute(f"SELECT count(*) FROM {rows.keys}").fetchone()[0]:
            return
        names = [c.split()[0] for c in rows.keys_columns.split(",")]
        self.store_conn.execute(f"CREATE TEMP TABLE {rows.keys} ({rows.keys_columns})")
        try:
            self._send(f"SELECT * FROM {rows.keys}", (), rows.keys, names)
            self.store_conn.execute(f"ANALYZE {rows.keys}")  # a temporary table has no statistics of its own
            self._copy_in(rows, params)
        finally:
            with contextlib.suppress(*database_errors()):
                self.store_conn.execute(f"DROP TABLE IF EXISTS {rows.keys}")

    def _copy_in(self, rows: StoreRows, params: Sequence[Any]) -> None:
        path = self.folder / f"{rows.table}.csv"
        self.store.copy_csv_out(self.store_conn, rows.query.format(keys=rows.keys), params, path)
        if path.stat().st_size:
            self.local.execute(f"INSERT INTO {rows.table} SELECT * FROM read_csv(?, {_CSV_READ}, columns = "
                               f"{{{', '.join(_column_types(rows.columns))}}})", [str(path)])
        path.unlink()

    def write(self, table: str, columns: Sequence[str], select: str, params: Sequence[Any] = ()) -> int:
        return self._send(select, params, table, columns)

    def _send(self, select: str, params: Sequence[Any], table: str, columns: Sequence[str]) -> int:
        """The rows of the local query into the store's ``table``; how many."""
        path = self.folder / f"{table}.csv"
        self.local.execute(f"CREATE OR REPLACE TEMP TABLE _imp_out AS {select}", list(params))
        try:
            count = int(self.local.execute(f"COPY _imp_out TO '{_quoted(path)}' (FORMAT csv, HEADER false)"
                                           ).fetchone()[0])
        finally:
            self.local.execute("DROP TABLE _imp_out")
        if count:
            self.store.copy_csv_in(self.store_conn, table, list(columns), path)
        path.unlink()
        return count


# How the database writes CSV (copy_csv_out): a quoted empty string is an empty string, not NULL.
_CSV_READ = "auto_detect = false, header = false, delim = ',', quote = '\"', escape = '\"', allow_quoted_nulls = false"


def _column_types(columns: str) -> list[str]:
    """``a VARCHAR, b DOUBLE`` as read_csv's ``'a': 'VARCHAR', 'b': 'DOUBLE'``."""
    return [f"'{name}': '{kind}'" for name, kind in (c.split(None, 1) for c in columns.split(","))]


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def stages_in_the_store(store: Store) -> bool:
    """Whether the file is staged inside the store itself (then a store that does not exist yet is created by
    staging, so a file must be checked before)."""
    return isinstance(store, DuckDBStore)


@contextmanager
def import_target(store: Store) -> Iterator[Target]:
    """The staging place for ``store`` (see the module docstring); its temporary tables go with the block."""
    if stages_in_the_store(store):
        with store.connect() as conn:
            yield _SameDatabase(store, conn)  # the connection closes with the block, its temporary tables too
        return
    local = duckdb.connect()
    try:
        local.execute("SET TimeZone = 'UTC'")
        with tempfile.TemporaryDirectory(prefix="agent_pipeline_import_") as folder:
            yield _CopiedRows(store, local, Path(folder))
    finally:
        local.close()
