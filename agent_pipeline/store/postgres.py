"""The PostgreSQL backend: the store shared by every host that reaches one database.

Selected by a ``postgresql://`` (or ``postgres://``) URL. What the DuckDB file backend gets from its file lock,
this one gets from the database, so it holds across hosts:

- a writable ``connect()`` holds a session advisory lock on the store (``pg_advisory_lock``) for the block, the
  same "one writer at a time" every domain was written against (the gate's rate limits, rolling notional,
  exposure caps, daily loss and duplicate protection, the rewards' delete-and-insert windows, the metrics
  rollup's watermark). ``connect(exclusive=False)`` skips it for writes that need no serialisation (one event
  row under its primary key); a read-only ``connect()`` never waits (MVCC) and cannot write
  (``default_transaction_read_only``);
- ``lock(name)`` is an advisory lock on the name; migrations run under one too, so two hosts never race a
  ``CREATE TABLE``;
- a lost client (a crashed process, a cut network) ends its session, and PostgreSQL releases its locks.

Domain SQL is written for DuckDB; ``_translate`` turns the portable subset into PostgreSQL's: ``?`` and
``$name`` parameters, ``DOUBLE``/``UBIGINT`` types, ``INSERT OR REPLACE`` (an ``ON CONFLICT`` upsert on the
table's primary key), ``GROUP BY ALL``. The few DuckDB functions the domains call on plain rows (``isfinite`` of
a number, ``epoch_us``, ``arg_max``, ``list_contains``) are created as SQL functions by this module's own
migration. Queries that need DuckDB's analytical SQL (lists, ``quantile_cont``, lambdas) run in an in-process
DuckDB over a bounded copy of the rows they read (``Store.analytical``). Results look like DuckDB's: a DML
statement answers one row with its row count, JSON comes back as text, timestamps in UTC.

The URL's password is never shown: ``repr`` and every error name the URL without it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
from psycopg import errors as pg_errors
from psycopg import sql as pg_sql
from psycopg.adapt import Loader
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from agent_pipeline.store.config import redact
from agent_pipeline.store.connection import DEFAULT_WRITE_TIMEOUT_S, LockBusy, Store, StoreBusy
from agent_pipeline.store.migrations import Schema

DATABASE_ERRORS: tuple[type[BaseException], ...] = (psycopg.Error,)  # see connection.database_errors

SCHEMES = ("postgresql", "postgres")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONNECT_TIMEOUT_S = 10
_COPY_CHUNK = 1 << 20

# The DuckDB functions domain SQL uses on plain rows, as PostgreSQL functions (same NULL behaviour).
COMPAT = Schema("postgres_compat", [
    """
    CREATE FUNCTION isfinite(double precision) RETURNS boolean LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT $1 NOT IN ('Infinity'::float8, '-Infinity'::float8, 'NaN'::float8) $$;
    CREATE FUNCTION epoch_us(timestamptz) RETURNS bigint LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT (extract(epoch FROM $1) * 1000000)::bigint $$;
    CREATE FUNCTION list_contains(anycompatiblearray, anycompatible) RETURNS boolean LANGUAGE sql IMMUTABLE
        PARALLEL SAFE AS $$ SELECT $2 = ANY($1) $$;
    CREATE TYPE arg_max_f8 AS (v double precision, k timestamptz);
    CREATE FUNCTION arg_max_f8_step(arg_max_f8, double precision, timestamptz) RETURNS arg_max_f8
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT CASE WHEN $2 IS NULL OR $3 IS NULL THEN $1
                    WHEN $1 IS NULL OR $3 > ($1).k THEN ROW($2, $3)::arg_max_f8 ELSE $1 END $$;
    CREATE FUNCTION arg_max_f8_final(arg_max_f8) RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT ($1).v $$;
    CREATE AGGREGATE arg_max(double precision, timestamptz) (
        SFUNC = arg_max_f8_step, STYPE = arg_max_f8, FINALFUNC = arg_max_f8_final);
    CREATE TYPE arg_max_i8 AS (v bigint, k timestamptz);
    CREATE FUNCTION arg_max_i8_step(arg_max_i8, bigint, timestamptz) RETURNS arg_max_i8
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT CASE WHEN $2 IS NULL OR $3 IS NULL THEN $1
                    WHEN $1 IS NULL OR $3 > ($1).k THEN ROW($2, $3)::arg_max_i8 ELSE $1 END $$;
    CREATE FUNCTION arg_max_i8_final(arg_max_i8) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT ($1).v $$;
    CREATE AGGREGATE arg_max(bigint, timestamptz) (
        SFUNC = arg_max_i8_step, STYPE = arg_max_i8, FINALFUNC = arg_max_i8_final);
    """,
])


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name (the same on every host and Python version)."""
    return int.from_bytes(hashlib.sha256(f"agent_pipeline:{name}".encode()).digest()[:8], "big", signed=True)


# -- SQL translation --------------------------------------------------------------------------------------------
_WORDS = re.compile(r"\b(DOUBLE(?!\s+PRECISION)|UBIGINT|GROUP\s+BY\s+ALL)\b", re.IGNORECASE)
_UPSERT = re.compile(r"^\s*INSERT\s+OR\s+REPLACE\s+INTO\s+(\w+)\s*\(([^)]*)\)", re.IGNORECASE)
_TYPES = {"DOUBLE": "DOUBLE PRECISION", "UBIGINT": "NUMERIC(20, 0)"}


def _outside_quotes(sql: str) -> Iterator[tuple[bool, str]]:
    """The pieces of ``sql``: (True, code) outside string literals, quoted identifiers and ``$$`` bodies."""
    pattern = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\$\$.*?\$\$|--[^\n]*)", re.DOTALL)
    last = 0
    for match in pattern.finditer(sql):
        yield True, sql[last:match.start()]
        yield False, match.group(0)
        last = match.end()
    yield True, sql[last:]


def _group_by_all(code: str) -> str:
    """``SELECT a, b, count(*) ... GROUP BY ALL`` -> ``GROUP BY 1, 2``: the leading select items that are no
    aggregate (the domains write the grouped columns first)."""
    match = re.search(r"SELECT\s+(.*?)\s+FROM\b", code, re.IGNORECASE | re.DOTALL)
    items = [] if match is None else [i.strip() for i in _split_items(match.group(1))]
    keys = []
    for number, item in enumerate(items, start=1):
        if re.search(r"\b(count|sum|avg|min|max|arg_max|string_agg|bool_and|bool_or)\s*\(", item, re.IGNORECASE):
            break
        keys.append(str(number))
    if not keys:
        raise ValueError("GROUP BY ALL: no grouped column found in the select list")
    return re.sub(r"GROUP\s+BY\s+ALL", "GROUP BY " + ", ".join(keys), code, flags=re.IGNORECASE)


def _split_items(select_list: str) -> list[str]:
    items, depth, current = [], 0, ""
    for char in select_list:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    return [*items, current]


@functools.lru_cache(maxsize=1024)
def translate(sql: str, named: bool = False) -> str:
    """DuckDB-flavoured domain SQL as PostgreSQL SQL for psycopg (``%s`` / ``%(name)s`` placeholders). Cached:
    the domains send the same few statements over and over (the gate's reads, every order), and their text is
    the key, so parameters never enter it."""
    out = []
    for code, piece in _outside_quotes(sql):
        piece = piece.replace("%", "%%")  # psycopg reads placeholders in literals too
        if not code:
            out.append(piece)
            continue
        piece = re.sub(r"\$([A-Za-z_]\w*)", r"%(\1)s", piece) if named else piece.replace("?", "%s")
        piece = _WORDS.sub(lambda m: _TYPES.get(m.group(1).upper(), m.group(1)), piece)
        out.append(piece)
    text = "".join(out)
    if re.search(r"GROUP\s+BY\s+ALL", text, re.IGNORECASE):
        text = _group_by_all(text)
    return text


class _TextJson(Loader):
    """JSON columns come back as their text, as DuckDB returns them (domains parse what they need)."""

    def load(self, data) -> str:
        return bytes(data).decode()


class _Number(Loader):
    """NUMERIC (what PostgreSQL's ``sum`` of integers gives) as an int when whole, else a float (as DuckDB)."""

    def load(self, data):
        text = bytes(data).decode()
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        return float(text)


# -- the connection the domains see ----------------------------------------------------------------------------
class Result:
    """What ``execute`` returns, shaped like DuckDB's: ``fetchone``, ``fetchall``, ``df``, ``description``."""

    def __init__(self, cursor: psycopg.Cursor):
        self._cursor = cursor
        self._count = cursor.rowcount if cursor.description is None else None

    @property
    def description(self):
        return self._cursor.description if self._count is None else [("Count",)]

    def fetchone(self):
        if self._count is not None:  # DuckDB answers a DML statement with its row count
            count, self._count = self._count, -1
            return None if count < 0 else (max(count, 0),)
        return self._cursor.fetchone()

    def fetchall(self):
        if self._count is not None:
            row = self.fetchone()
            return [] if row is None else [row]
        return self._cursor.fetchall()

    def fetchmany(self, size: int):
        if self._count is not None:
            return self.fetchall()
        return self._cursor.fetchmany(size)

    def df(self) -> pd.DataFrame:
        names = [d[0] for d in self.description]
        return pd.DataFrame.from_records(self.fetchall(), columns=names)


class Connection:
    """A psycopg connection that speaks the DuckDB Python API the domains use (``execute``, ``executemany``)."""

    def __init__(self, raw: psycopg.Connection, store: PostgresStore):
        self.raw = raw
        self.store = store

    def _params(self, sql: str, params) -> tuple[str, Any]:
        if isinstance(params, Mapping):
            return translate(sql, named=True), dict(params)
        return translate(sql), list(params or [])

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> Result:
        upsert = _UPSERT.match(sql)
        if upsert is not None:
            sql = self._upsert(sql, upsert)
        text, values = self._params(sql, params)
        cursor = self.raw.cursor()
        statements = _statements(text) if not values else [text]
        for statement in statements:  # a migration script holds several statements (the extended protocol
            cursor.execute(statement, values)  # takes one at a time); parameters come with one statement only
        return Result(cursor)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        text, _ = self._params(sql, [])
        with self.raw.cursor() as cursor:
            cursor.executemany(text, [list(r) for r in rows])

    def _upsert(self, sql: str, match: re.Match) -> str:
        table, columns = match.group(1), [c.strip().strip('"') for c in match.group(2).split(",")]
        keys = self.store.primary_key(self, table)
        if not keys:
            raise ValueError(f"INSERT OR REPLACE INTO {table}: the table has no primary key")
        update = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns if c not in keys) or "NOTHING"
        body = re.sub(r"^\s*INSERT\s+OR\s+REPLACE\s+INTO", "INSERT INTO", sql, count=1, flags=re.IGNORECASE)
        conflict = f" ON CONFLICT ({', '.join(keys)}) DO " + ("NOTHING" if update == "NOTHING" else f"UPDATE SET {update}")
        return body.rstrip().rstrip(";") + conflict

    def has_table(self, name: str) -> bool:
        return bool(self.raw.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_name = %s", [name]).fetchone()[0])

    def close(self) -> None:
        self.raw.close()


@functools.lru_cache(maxsize=256)
def _statements(script: str) -> tuple[str, ...]:
    """A script split at the semicolons outside literals and ``$$`` bodies (empty pieces dropped; cached as
    ``translate``)."""
    pieces, current = [], ""
    for code, piece in _outside_quotes(script):
        if not code:
            current += piece
            continue
        parts = piece.split(";")
        current += parts[0]
        for part in parts[1:]:
            pieces.append(current)
            current = part
    pieces.append(current)
    return tuple(p.strip() for p in pieces if p.strip())


class PostgresStore(Store):
    """One PostgreSQL database (``postgresql://user@host:port/db?...``; libpq's variables and ``~/.pgpass``
    supply what the URL leaves out, the password above all)."""

    shared = True

    def __init__(self, url: str | None = None):
        super().__init__()
        if not isinstance(url, str) or not url.split("://", 1)[0].lower() in SCHEMES:
            raise ValueError(f"a PostgreSQL store needs a postgresql:// URL, got {url!r}")
        scheme, rest = url.split("://", 1)
        url = f"{scheme.lower()}://{rest}"  # libpq knows the schemes in lower case only
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"store URL {redact(url)}: {redact(str(exc))}") from None
        self.url = url
        params.setdefault("connect_timeout", str(_CONNECT_TIMEOUT_S))
        params.setdefault("application_name", "agent_pipeline")
        self._conninfo = make_conninfo(**params, options="-c TimeZone=UTC")
        self._keys: dict[str, tuple[str, ...]] = {}

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)!r})"

    @property
    def location(self) -> str:
        return redact(self.url)

    def _open(self, read_only: bool) -> Connection:
        try:
            raw = psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.OperationalError as exc:
            raise StoreBusy(f"{redact(self.url)}: cannot connect ({_first_line(exc)})") from None
        raw.adapters.register_loader("json", _TextJson)
        raw.adapters.register_loader("jsonb", _TextJson)
        raw.adapters.register_loader("numeric", _Number)
        if read_only:
            raw.execute("SET default_transaction_read_only = on")
        return Connection(raw, self)

    def exists(self) -> bool:
        """Whether the database answers and holds the store's tables (readers of an empty one see no data)."""
        try:
            with contextlib.closing(self._open(read_only=True)) as conn:
                return conn.has_table("schema_versions")
        except (StoreBusy, psycopg.Error):
            return False

    @contextmanager
    def connect(self, *, read_only: bool = False, timeout_s: float | None = None,
                exclusive: bool = True) -> Iterator[Connection]:
        wait = DEFAULT_WRITE_TIMEOUT_S if timeout_s is None else timeout_s
        conn = self._open(read_only)
        try:
            if read_only and not conn.has_table("schema_versions"):
                raise FileNotFoundError(f"{redact(self.url)}: no store yet")
            if not read_only and exclusive:
                self._advisory(conn, "store", wait, StoreBusy, "store")
            if not read_only:
                self.ensure(conn, COMPAT)
            yield conn
        finally:
            conn.close()  # ends the session: its advisory locks go with it

    @staticmethod
    def _advisory(conn: Connection, name: str, timeout_s: float, busy: type[LockBusy], what: str) -> None:
        """Take the session advisory lock ``name``, waiting at most ``timeout_s`` (queued fairly by the server)."""
        conn.raw.execute(f"SET lock_timeout = {max(1, int(timeout_s * 1000))}")
        try:
            conn.raw.execute("SELECT pg_advisory_lock(%s)", [lock_key(name)])
        except pg_errors.LockNotAvailable:
            raise busy(f"{redact(conn.store.url)}: {what} busy for more than {timeout_s:.3g} s") from None
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.raw.execute("SET lock_timeout = 0")

    @contextmanager
    def lock(self, name: str, timeout_s: float) -> Iterator[None]:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"lock name must be 1-64 letters, digits, '_' or '-', got {name!r}")
        conn = self._open(read_only=False)
        try:
            self._advisory(conn, f"lock:{name}", timeout_s, LockBusy, f"{name} lock")
            yield
        finally:
            conn.close()

    def ensure(self, conn, schema: Schema) -> None:
        """Migrations under the database's schema lock: two hosts never apply the same script twice."""
        if schema.component in self._migrated and all(r.component in self._migrated for r in schema.requires):
            return
        conn.raw.execute("SELECT pg_advisory_lock(%s)", [lock_key("schema")])
        try:
            super().ensure(conn, schema)
        finally:
            conn.raw.execute("SELECT pg_advisory_unlock(%s)", [lock_key("schema")])

    def primary_key(self, conn: Connection, table: str) -> tuple[str, ...]:
        if table not in self._keys:
            rows = conn.raw.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) AND i.indisprimary "
                "ORDER BY array_position(i.indkey, a.attnum)", [table]).fetchall()
            self._keys[table] = tuple(r[0] for r in rows)
        return self._keys[table]

    def insert_frame(self, conn, table: str, frame: pd.DataFrame, *, skip_conflicts: bool = False) -> int:
        if not _TABLE.fullmatch(table):
            raise ValueError(f"insert_frame: {table!r} is not a table name")
        if not len(frame.columns):
            raise ValueError(f"insert_frame into {table}: the frame has no columns")
        if frame.empty:
            return 0
        columns = pg_sql.SQL(", ").join(pg_sql.Identifier(str(c)) for c in frame.columns)
        rows = [[_plain(v) for v in row] for row in frame.itertuples(index=False, name=None)]
        staged = pg_sql.Identifier(f"_insert_{table}")
        with conn.raw.cursor() as cursor:
            # stage with COPY (one round trip for the rows), then one INSERT that can skip conflicts
            cursor.execute(pg_sql.SQL("CREATE TEMP TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(
                staged, columns, pg_sql.Identifier(table)))  # the columns' types, none of the constraints
            try:
                with cursor.copy(pg_sql.SQL("COPY {} ({}) FROM STDIN").format(staged, columns)) as copy:
                    for row in rows:
                        copy.write_row(row)
                conflicts = pg_sql.SQL(" ON CONFLICT DO NOTHING" if skip_conflicts else "")
                cursor.execute(pg_sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}{}").format(
                    pg_sql.Identifier(table), columns, columns, staged, conflicts))
                inserted = cursor.rowcount
            finally:
                with contextlib.suppress(psycopg.Error):
                    cursor.execute(pg_sql.SQL("DROP TABLE IF EXISTS {}").format(staged))
        return int(inserted)

    def copy_rows(self, conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Rows as they came from another store, in one ``COPY`` (no pandas in between: types stay exact)."""
        if not _TABLE.fullmatch(table):
            raise ValueError(f"copy_rows: {table!r} is not a table name")
        names = pg_sql.SQL(", ").join(pg_sql.Identifier(c) for c in columns)
        with conn.raw.cursor() as cursor:
            with cursor.copy(pg_sql.SQL("COPY {} ({}) FROM STDIN").format(pg_sql.Identifier(table), names)) as copy:
                for row in rows:
                    copy.write_row(row)

    def copy_csv_in(self, conn: Connection, table: str, columns: Sequence[str], source: Path) -> None:
        """The rows of a CSV file (RFC 4180 quoting, NULL unquoted and empty, no header, as DuckDB's ``COPY ... TO``
        writes it) into ``table`` in one ``COPY``: no Python object per row, so a million rows take seconds."""
        if not _TABLE.fullmatch(table):
            raise ValueError(f"copy_csv_in: {table!r} is not a table name")
        names = pg_sql.SQL(", ").join(pg_sql.Identifier(c) for c in columns)
        statement = pg_sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(pg_sql.Identifier(table), names)
        with conn.raw.cursor() as cursor, cursor.copy(statement) as copy, source.open("rb") as lines:
            while chunk := lines.read(_COPY_CHUNK):
                copy.write(chunk)

    def copy_csv_out(self, conn: Connection, sql: str, params: Sequence[Any], target: Path) -> None:
        """What the query ``sql`` selects, as a CSV file of the same form (``copy_csv_in``) DuckDB's ``read_csv``
        reads back exactly."""
        statement = pg_sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(pg_sql.SQL(translate(sql)))
        with conn.raw.cursor() as cursor, cursor.copy(statement, list(params)) as copy, target.open("wb") as out:
            for chunk in copy:
                out.write(chunk)

    @contextmanager
    def analytical(self, conn, schema: Schema, rows: Mapping[str, tuple[str, Sequence[Any]]]) -> Iterator[Any]:
        """An in-process DuckDB holding ``schema``'s tables with the rows each ``rows[table]`` query selects from
        this database (``SELECT * FROM table WHERE ...``: a bounded window, never the whole history)."""
        import duckdb

        from agent_pipeline.store.migrations import migrate

        local = duckdb.connect()
        try:
            local.execute("SET TimeZone = 'UTC'")
            for required in (*_closure(schema),):
                migrate(local, required.component, required.migrations)
            for table, (select, params) in rows.items():
                frame = conn.execute(select, params).df()
                if not frame.empty:
                    local.register("_analytical_rows", frame)
                    names = ", ".join(f'"{c}"' for c in frame.columns)
                    local.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _analytical_rows")
                    local.unregister("_analytical_rows")
            yield local
        finally:
            local.close()


def _closure(schema: Schema) -> list[Schema]:
    out: list[Schema] = []
    for required in schema.requires:
        out += [s for s in _closure(required) if s not in out]
    return [*out, schema] if schema not in out else out


def _plain(value: Any) -> Any:
    """A frame cell as psycopg adapts it: missing values (NaN, NaT, pd.NA) are NULL, numpy scalars Python's."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # a list or array cell
        return list(value)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    item = getattr(value, "item", None)
    return item() if callable(item) and type(value).__module__ == "numpy" else value


def _first_line(exc: BaseException) -> str:
    return redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)


def wait_until_ready(url: str, timeout_s: float = 30.0) -> None:
    """Block until the server at ``url`` accepts connections (deployment scripts, tests)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
