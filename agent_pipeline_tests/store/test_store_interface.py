"""The store interface the domains use: backend by location, Schema, begin(), read_frame, insert_frame, named locks."""

import ast
from pathlib import Path

import pandas as pd
import pytest

import agent_pipeline
from agent_pipeline.store import LockBusy, Schema, Store, StoreBusy, begin, has_table, open_store
from agent_pipeline.store.duckdb_file import DuckDBStore
from agent_pipeline.store.migrations import current_version
from agent_pipeline.store.postgres import PostgresStore
from agent_pipeline_tests.store.conftest import address

PACKAGE = Path(agent_pipeline.__file__).parent


def _rows(store, sql):
    with store.connect(read_only=True) as conn:
        return conn.execute(sql).fetchall()


# -- which backend -------------------------------------------------------------------------------------------
def test_a_path_or_nothing_is_the_duckdb_file(tmp_path, pipeline_home):
    assert isinstance(Store(tmp_path / "a.duckdb"), DuckDBStore)
    assert open_store(str(tmp_path / "b.duckdb")).path == tmp_path / "b.duckdb"
    assert open_store().path == pipeline_home / "agent_pipeline.duckdb"
    assert Store.at_home().path == pipeline_home / "agent_pipeline.duckdb"
    assert open_store(f"duckdb://{tmp_path}/c.duckdb").path == tmp_path / "c.duckdb"


@pytest.mark.parametrize("url", ["mysql://x", "S3://bucket/key", "sqlite:///a.db"])
def test_a_url_without_a_backend_is_refused_by_name(url):
    with pytest.raises(ValueError, match=r"no store backend for .*://.*known: duckdb://, postgres://, postgresql://"):
        open_store(url)


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "postgres://u:secret@h:5433/db?sslmode=require",
                                 "POSTGRESQL://h/db"])
def test_a_postgresql_url_is_the_database_backend_and_its_password_is_never_shown(url):
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    assert "secret" not in repr(store) and "secret" not in store.location
    assert store.location.startswith(url.split("://")[0].lower() + "://")


def test_a_database_that_cannot_be_reached_is_a_busy_store_naming_it_without_its_password(postgres_server):
    url = f"postgresql://nobody:hunter2@127.0.0.1:{postgres_server.port + 1}/none?connect_timeout=1"
    store = open_store(url)
    assert not store.exists()
    with pytest.raises(StoreBusy, match=r"cannot connect") as caught:
        with store.connect(timeout_s=0.5):
            pass
    assert "hunter2" not in str(caught.value) and "nobody:***@" in str(caught.value)


def test_a_duckdb_url_must_name_a_file():
    with pytest.raises(ValueError, match="names no file"):
        open_store("duckdb://")


@pytest.fixture
def store(each_store):
    return each_store


# -- schemas ---------------------------------------------------------------------------------------------------
BASE = Schema("t_base", ["CREATE TABLE base (id INTEGER PRIMARY KEY, name VARCHAR)"])
DERIVED = Schema("t_derived", ["CREATE VIEW derived AS SELECT id FROM base", "CREATE TABLE extra (x INTEGER)"],
                 requires=(BASE,))


def test_a_schema_brings_what_it_requires_up_first_once(store):
    with store.connect() as conn:
        DERIVED.ensure(store, conn)  # its view reads a table of the required schema: that one must come first
        DERIVED.ensure(store, conn)
        assert current_version(conn, "t_base") == 1 and current_version(conn, "t_derived") == 2
        assert has_table(conn, "extra") and store.has_table(conn, "derived")
    fresh = Store(address(store))  # another process's view of the same file: nothing is applied twice
    with fresh.connect() as conn:
        DERIVED.ensure(fresh, conn)
        assert conn.execute("SELECT count(*) FROM schema_versions WHERE component LIKE 't_%'").fetchone()[0] == 3


def test_a_failing_migration_leaves_the_store_at_its_last_good_version(store):
    broken = Schema("t_broken", ["CREATE TABLE good (x INTEGER)", "CREATE TABLE good (x INTEGER)"])
    with store.connect() as conn:
        with pytest.raises(Exception, match="already exists"):
            broken.ensure(store, conn)
        assert current_version(conn, "t_broken") == 1


@pytest.mark.parametrize("component,migrations", [("", ["SELECT 1"]), (None, ["SELECT 1"]), ("c", ["  "]),
                                                  ("c", [None])])
def test_a_schema_without_a_name_or_with_an_empty_script_is_refused(component, migrations):
    with pytest.raises(ValueError, match="schema"):
        Schema(component, migrations)


# -- transactions ------------------------------------------------------------------------------------------------
def test_begin_commits_the_block_and_rolls_back_a_failed_one(store):
    with store.connect() as conn:
        BASE.ensure(store, conn)
        with begin(conn):
            conn.execute("INSERT INTO base VALUES (1, 'kept')")
        with pytest.raises(RuntimeError, match="boom"):
            with begin(conn):
                conn.execute("INSERT INTO base VALUES (2, 'lost')")
                raise RuntimeError("boom")
        assert conn.execute("SELECT id FROM base").fetchall() == [(1,)]


def test_a_failed_rollback_keeps_the_original_error_and_says_so(pipeline_home):
    store = Store.at_home(pipeline_home)  # the file: PostgreSQL answers such a ROLLBACK with a warning, no error
    with store.connect() as conn:
        with pytest.raises(RuntimeError, match="boom") as caught:
            with begin(conn):
                conn.execute("COMMIT")  # the transaction is gone: the rollback has nothing to end
                raise RuntimeError("boom")
    assert any("rollback failed as well" in note for note in caught.value.__notes__)


def test_transaction_migrates_first_and_keeps_the_schema_when_the_block_fails(store):
    with pytest.raises(ValueError):
        with store.transaction(schema=BASE) as conn:
            conn.execute("INSERT INTO base VALUES (1, 'x')")
            raise ValueError("no")
    assert _rows(store, "SELECT count(*) FROM base") == [(0,)]
    assert _rows(store, "SELECT version FROM schema_versions WHERE component = 't_base'") == [(1,)]


# -- frames --------------------------------------------------------------------------------------------------------
def test_read_frame_on_a_missing_store_or_table_is_empty_with_its_columns_and_writes_nothing(tmp_path):
    missing = Store(tmp_path / "none.duckdb")
    frame = missing.read_frame("SELECT * FROM base", table="base", columns=("id", "name"), schema=BASE,
                               read_only=True)
    assert frame.empty and list(frame.columns) == ["id", "name"]
    assert not missing.exists()
    with missing.connect():
        pass  # the file exists now, without the table
    frame = missing.read_frame("SELECT * FROM base", table="base", columns=("id", "name"), schema=BASE,
                               read_only=True)
    assert frame.empty and list(frame.columns) == ["id", "name"]
    assert _rows(missing, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'base'") == [(0,)]


def test_a_writable_read_frame_brings_the_schema_up_and_reads_rows(store):
    assert store.read_frame("SELECT * FROM base", table="base", columns=("id", "name"), schema=BASE).empty
    with store.transaction(schema=BASE) as conn:
        conn.execute("INSERT INTO base VALUES (1, 'a'), (2, 'b')")
    frame = store.read_frame("SELECT * FROM base WHERE id > ? ORDER BY id", [1], table="base",
                             columns=("id", "name"), read_only=True)
    assert frame.to_dict("records") == [{"id": 2, "name": "b"}]


def test_insert_frame_counts_what_it_inserted_and_can_skip_stored_keys(store):
    window = Schema("t_window", ['CREATE TABLE win (id INTEGER PRIMARY KEY, "window" VARCHAR)'])
    frame = pd.DataFrame({"id": [1, 2, 2, 3], "window": ["a", "b", "b", "c"]})
    with store.transaction(schema=window) as conn:
        assert store.insert_frame(conn, "win", frame.iloc[:1]) == 1
        assert store.insert_frame(conn, "win", frame, skip_conflicts=True) == 2  # 1 is stored, 2 repeats
    assert _rows(store, 'SELECT id, "window" FROM win ORDER BY id') == [(1, "a"), (2, "b"), (3, "c")]
    with store.transaction(schema=window) as conn:
        with pytest.raises(Exception, match="(?i)constraint|duplicate"):
            store.insert_frame(conn, "win", frame.iloc[:1])


@pytest.mark.parametrize("table", ["win; DROP TABLE win", "", "a b", "1x"])
def test_insert_frame_refuses_what_is_not_a_table_name(store, table):
    with store.connect() as conn:
        with pytest.raises(ValueError, match="not a table name"):
            store.insert_frame(conn, table, pd.DataFrame({"id": [1]}))


# -- locks -------------------------------------------------------------------------------------------------------
def test_a_named_lock_excludes_only_holders_of_the_same_name(store):
    with store.lock("publish", 1.0):
        with pytest.raises(LockBusy, match="publish lock busy"):
            with store.lock("publish", 0.05):
                pass
        with store.lock("other", 0.05), store.connect(timeout_s=0.5):
            pass  # another name, and the store itself, are free
    with store.lock("publish", 0.05):
        pass
    with store.connect():
        with pytest.raises(StoreBusy):
            with store.connect(timeout_s=0.05):
                pass


@pytest.mark.parametrize("name", ["", "../escape", "a/b", "x" * 65, "dot.name", None])
def test_a_lock_name_that_could_name_another_file_is_refused(store, name):
    with pytest.raises(ValueError, match="lock name"):
        with store.lock(name, 0.1):
            pass


# -- the seam --------------------------------------------------------------------------------------------------
# Outside the store package, only these read files of their own with DuckDB or catch its error type.
DUCKDB_OUTSIDE_THE_STORE = {
    PACKAGE / "market" / "replay.py",  # reads a user's quote file with DuckDB's CSV/Parquet readers
    PACKAGE / "metrics" / "collector.py",  # reads a store that does not exist yet as an empty in-memory DuckDB
}


def test_domains_reach_the_database_only_through_the_store():
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "store") in path.parents or path in DUCKDB_OUTSIDE_THE_STORE:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offences += [f"{path}:{node.lineno} imports {n}" for n in names if n.split(".")[0] == "duckdb"]
    assert offences == [], "\n".join(offences)
