"""``agent-pipeline store migrate|copy``: bring a store's tables up to date, or move a store into PostgreSQL.

``migrate`` applies every domain's pending migrations to the configured store (``[store] url`` /
``$AGENT_PIPELINE_STORE_URL``, else the home's DuckDB file) or to ``--to``. ``copy --from <path or URL> --to
<URL>`` copies every table: both stores are brought to the current schema, each table is copied in one
transaction, then its row count and an order-independent checksum of every row are compared on both sides. A
target table that already holds exactly the source's rows is left alone, so running the copy again changes
nothing; one that holds other rows is refused (nothing of it is touched) unless ``--replace`` says to replace
its rows. Exit status: 0 copied and verified (or nothing to do), 1 a table differs after copying or is refused,
2 the copy could not run.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from agent_pipeline.cli import REQUIRED
from agent_pipeline.store import Schema, Store, begin, has_table
from agent_pipeline.store.config import redact

BATCH_ROWS = 20_000
_MASK = (1 << 64) - 1


def schemas() -> list[Schema]:
    """Every component's tables, as the domains declare them (what ``migrate`` brings up to date)."""
    from agent_pipeline.allocation.tables import ALLOCATION
    from agent_pipeline.metrics.publish import PUSH_STATE
    from agent_pipeline.metrics.rollup import COMPONENT, MIGRATIONS
    from agent_pipeline.reward.history import REWARDS
    from agent_pipeline.store.events import EVENTS
    from agent_pipeline.store.importer import IMPORT
    from agent_pipeline.trading.kill_switch_anchor import ANCHOR
    from agent_pipeline.trading.kill_switch_store import KILL_SWITCH
    from agent_pipeline.trading.tables import TRADING

    return [EVENTS, IMPORT, REWARDS, ALLOCATION, TRADING, Schema(COMPONENT, MIGRATIONS), PUSH_STATE, KILL_SWITCH,
            ANCHOR]


def migrate_store(store: Store) -> dict[str, int]:
    """Apply every pending migration; the version of each component afterwards."""
    from agent_pipeline.store.migrations import current_version

    with store.connect() as conn:
        for schema in schemas():
            store.ensure(conn, schema)
        return {s.component: current_version(conn, s.component) for s in schemas()}


def _canonical(value) -> str:
    """One cell as text that reads the same from either backend (floats exactly, times in UTC)."""
    if value is None:
        return "\x00"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, Decimal):
        return str(int(value)) if value == value.to_integral_value() else repr(float(value))
    if isinstance(value, datetime):
        return (value if value.tzinfo is None else value.astimezone(UTC)).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    return f"{value}"


def _row_hash(row: Sequence) -> int:
    text = "\x1f".join(_canonical(v) for v in row)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8], "big")


@dataclass
class TableCheck:
    table: str
    rows: int = 0
    checksum: int = 0

    def add(self, rows: Iterable[Sequence]) -> None:
        for row in rows:
            self.rows += 1
            self.checksum = (self.checksum + _row_hash(row)) & _MASK  # a sum: the same in any row order

    def __eq__(self, other) -> bool:
        return (self.rows, self.checksum) == (other.rows, other.checksum)


def _batches(conn, sql: str):
    result = conn.execute(sql)
    while True:
        rows = result.fetchmany(BATCH_ROWS)
        if not rows:
            return
        yield rows


def _columns(store: Store, conn, table: str) -> list[str]:
    schema = "current_schema()" if store.shared else "'main'"
    rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                        f"AND table_schema = {schema} ORDER BY ordinal_position", [table]).fetchall()
    return [r[0] for r in rows]


def _tables(store: Store, conn) -> list[str]:
    schema = "current_schema()" if store.shared else "'main'"
    rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
                        f"AND table_schema = {schema} ORDER BY table_name").fetchall()
    return [r[0] for r in rows if r[0] != "schema_versions"]


def _check(conn, table: str, columns: Sequence[str]) -> TableCheck:
    check = TableCheck(table)
    for rows in _batches(conn, f"SELECT {', '.join(_quoted(c) for c in columns)} FROM {table}"):
        check.add(rows)
    return check


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def copy_store(source: Store, target: Store, *, replace: bool = False, out=None) -> list[str]:
    """Copy every table of ``source`` into ``target`` (see the module docstring); the tables that differ."""
    out = out or sys.stdout
    if not target.shared:
        raise ValueError(f"copy --to must name a database store (postgresql://...), got {target.location}")
    if not source.exists():
        raise FileNotFoundError(f"{source.location}: no store there to copy")
    migrate_store(source)
    migrate_store(target)
    problems: list[str] = []
    with source.connect(read_only=True) as src, target.connect() as dst:
        for table in _tables(source, src):
            columns = _columns(source, src, table)
            if not has_table(dst, table):
                problems.append(f"{table}: the target has no such table")
                continue
            missing = set(columns) - set(_columns(target, dst, table))
            if missing:
                problems.append(f"{table}: the target lacks column(s) {sorted(missing)}")
                continue
            want = _check(src, table, columns)
            have = _check(dst, table, columns)
            if have == want:
                print(f"{table}: {want.rows} rows, already there (checksum {want.checksum:016x})", file=out)
                continue
            if have.rows and not replace:
                problems.append(f"{table}: the target already holds {have.rows} other rows (use --replace to "
                                f"replace them)")
                continue
            with begin(dst):
                if have.rows:
                    dst.execute(f"DELETE FROM {table}")
                for rows in _batches(src, f"SELECT {', '.join(_quoted(c) for c in columns)} FROM {table}"):
                    target.copy_rows(dst, table, columns, rows)
            copied = _check(dst, table, columns)
            if copied != want:
                problems.append(f"{table}: {copied.rows} rows with checksum {copied.checksum:016x} after copying, "
                                f"the source has {want.rows} with {want.checksum:016x}")
                continue
            print(f"{table}: {copied.rows} rows copied, counts and checksums equal ({copied.checksum:016x})",
                  file=out)
    return problems


def _migrate(args: argparse.Namespace, settings) -> int:
    store = Store(args.to or settings.store_location)
    for component, version in migrate_store(store).items():
        print(f"{component}: version {version}")
    print(f"store {store.location}: up to date")
    return 0


def _copy(args: argparse.Namespace, settings) -> int:
    source, target = Store(args.source), Store(args.to)
    print(f"copying {source.location} -> {target.location}")
    problems = copy_store(source, target, replace=args.replace)
    for problem in problems:
        print(f"agent-pipeline store copy: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"done: every table of {source.location} is in {target.location}; set [store] url (or "
          f"$AGENT_PIPELINE_STORE_URL) to {redact(args.to)} to use it")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser("store", help="migrate the store, or copy it into a PostgreSQL database")
    store_sub = cmd.add_subparsers(dest="store_command", required=True)
    migrate = store_sub.add_parser("migrate", help="apply every pending migration to the configured store")
    migrate.add_argument("--to", help="a store path or URL instead of the configured one")
    migrate.set_defaults(func=_migrate, settings=REQUIRED)
    copy = store_sub.add_parser(
        "copy", help="copy every table into a PostgreSQL store, counts and checksums compared",
        description="Copy every table of a store (a DuckDB file or a database) into a PostgreSQL store. Re-running "
                    "it changes nothing; a target table holding other rows is refused unless --replace.",
        epilog="exit status: 0 copied and verified (or already there), 1 a table refused or differing, 2 error")
    copy.add_argument("--from", dest="source", required=True, help="the source: a DuckDB file path or a URL")
    copy.add_argument("--to", required=True, help="the target: postgresql://user@host:port/db")
    copy.add_argument("--replace", action="store_true", help="replace the rows of target tables that differ")
    copy.set_defaults(func=_copy, settings=REQUIRED)
