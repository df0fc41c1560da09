"""What the PostgreSQL backend does with DuckDB-flavoured domain SQL, run on a real server: results shaped as
DuckDB's, the translated statements, and the DuckDB row functions it provides."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from agent_pipeline.store import Schema, Store, database_errors
from agent_pipeline.store.postgres import translate

T = Schema("t_dialect", ["""
    CREATE TABLE kv (id INTEGER PRIMARY KEY, v DOUBLE, note VARCHAR, n UBIGINT, doc JSON, at TIMESTAMPTZ);
"""])


@pytest.fixture
def conn(postgres_url):
    store = Store(postgres_url)
    with store.connect() as conn:
        store.ensure(conn, T)
        yield conn


def test_dml_answers_its_row_count_as_duckdb_does(conn):
    assert conn.execute("INSERT INTO kv (id, v) VALUES (?, ?), (?, ?)", [1, 1.0, 2, 2.0]).fetchone() == (2,)
    assert conn.execute("UPDATE kv SET v = v + 1 WHERE id = ?", [1]).fetchone()[0] == 1
    assert conn.execute("DELETE FROM kv WHERE id = ?", [9]).fetchone()[0] == 0


def test_insert_or_replace_is_an_upsert_on_the_primary_key(conn):
    for note in ("first", "second"):
        conn.execute("INSERT OR REPLACE INTO kv (id, v, note) VALUES (1, ?, ?)", [len(note), note])
    assert conn.execute("SELECT id, v, note FROM kv").fetchall() == [(1, 6.0, "second")]


def test_group_by_all_groups_by_the_leading_columns(conn):
    conn.executemany("INSERT INTO kv (id, note, v) VALUES (?, ?, ?)", [[1, "a", 1.0], [2, "a", 2.0], [3, "b", 5.0]])
    rows = conn.execute("SELECT note, count(*), sum(v) FROM kv GROUP BY ALL ORDER BY note").fetchall()
    assert rows == [("a", 2, 3.0), ("b", 1, 5.0)]


def test_percent_signs_named_parameters_and_literals_with_question_marks(conn):
    conn.execute("INSERT INTO kv (id, note) VALUES (1, 'is 50% done?'), (2, 'other')")
    assert conn.execute("SELECT id FROM kv WHERE note LIKE '%done?' AND id % 2 = ?", [1]).fetchall() == [(1,)]
    assert conn.execute("SELECT note FROM kv WHERE id = $id", {"id": 2}).fetchall() == [("other",)]
    assert translate("SELECT '?' , ? FROM t") == "SELECT '?' , %s FROM t"


def test_types_come_back_as_duckdb_returns_them(conn):
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    conn.execute("INSERT INTO kv (id, v, n, doc, at) VALUES (1, ?, ?, ?, ?)",
                 [float("nan"), 2 ** 63 + 5, '{"b": [1, 2]}', at])
    v, n, doc, got, total = conn.execute("SELECT v, n, doc, at, sum(id) OVER () FROM kv").fetchone()
    assert math.isnan(v) and n == 2 ** 63 + 5 and doc == '{"b": [1, 2]}'  # JSON as its text, as stored
    assert got == at and got.utcoffset().total_seconds() == 0 and total == 1 and isinstance(total, int)


def test_the_duckdb_row_functions_exist_with_duckdbs_null_behaviour(conn):
    rows = [[1, 1.0, "2026-01-01T00:00:01Z"], [2, float("inf"), "2026-01-01T00:00:03Z"],
            [3, None, "2026-01-01T00:00:09Z"], [4, 4.0, None]]
    conn.executemany("INSERT INTO kv (id, v, at) VALUES (?, ?, ?)", rows)
    finite = conn.execute("SELECT id, isfinite(v) FROM kv ORDER BY id").fetchall()
    assert finite == [(1, True), (2, False), (3, None), (4, True)]
    assert conn.execute("SELECT arg_max(v, at), arg_max(CAST(id AS BIGINT), at) FROM kv").fetchone() == (math.inf, 3)
    assert conn.execute("SELECT epoch_us(at) FROM kv WHERE id = 1").fetchone() == (1767225601000000,)
    assert conn.execute("SELECT list_contains($l, note) FROM (SELECT 'x'::varchar AS note) s",
                        {"l": ["x", "y"]}).fetchone() == (True,)


def test_a_statement_that_fails_names_the_database_error(conn):
    with pytest.raises(database_errors(), match="kv_missing"):
        conn.execute("SELECT * FROM kv_missing")
