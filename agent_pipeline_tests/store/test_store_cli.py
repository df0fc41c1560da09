"""``agent-pipeline store migrate`` and ``store copy``: an embedded store moves into PostgreSQL without loss."""

from __future__ import annotations

import json

import pytest

from agent_pipeline.cli import main
from agent_pipeline.store import Store, read_events
from agent_pipeline.store.importer import import_events
from agent_pipeline_tests.store.test_the_loop_on_each_backend import _loop


@pytest.fixture
def embedded(pipeline_home, tmp_path):
    """A DuckDB store with every domain's tables filled: events, rewards, quotas, orders, rollup, imports."""
    store = Store.at_home(pipeline_home)
    _loop(store, tmp_path / "metrics_home")
    lines = tmp_path / "events.jsonl"
    lines.write_text("\n".join([json.dumps({"agent": "imp", "reward": 0.5, "started_at": "2026-01-01T00:00:00Z"}),
                                "not json", json.dumps({"agent": "imp", "reward": "x"})]) + "\n")
    assert import_events(store, lines).inserted == 1
    return store


def _counts(store: Store) -> dict[str, int]:
    with store.connect(read_only=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema IN ('main', 'public') AND table_name <> 'schema_versions'").fetchall()]
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def _rows_of(frame) -> list[tuple]:
    return [tuple(None if v is None or v != v else v for v in row) for row in frame.itertuples(index=False)]


def test_copy_moves_every_table_and_running_it_again_changes_nothing(embedded, postgres_url, capsys):
    source = str(embedded.path)
    assert main(["store", "copy", "--from", source, "--to", postgres_url]) == 0
    out = capsys.readouterr().out
    copied = _counts(embedded)
    assert (copied["agent_events"], copied["orders"], copied["import_quarantine"]) == (41, 2, 2), copied
    target = Store(postgres_url)
    assert {t: n for t, n in _counts(target).items() if t in copied} == copied
    assert "agent_events: 41 rows copied, counts and checksums equal" in out
    assert _rows_of(read_events(target)) == _rows_of(read_events(embedded))

    assert main(["store", "copy", "--from", source, "--to", postgres_url]) == 0  # idempotent
    again = capsys.readouterr().out
    assert "copied" not in again and "agent_events: 41 rows, already there" in again
    assert {t: n for t, n in _counts(target).items() if t in copied} == copied


def test_a_target_holding_other_rows_is_refused_unless_asked_to_replace(embedded, postgres_url, capsys):
    source = str(embedded.path)
    assert main(["store", "copy", "--from", source, "--to", postgres_url]) == 0
    with Store(postgres_url).connect() as conn:
        conn.execute("DELETE FROM orders WHERE order_id = (SELECT min(order_id) FROM orders)")
        conn.execute("UPDATE agent_events SET reward = 99 WHERE event_id = 'e002'")  # same count, other content
    capsys.readouterr()
    assert main(["store", "copy", "--from", source, "--to", postgres_url]) == 1
    err = capsys.readouterr().err
    assert "orders: the target already holds 1 other rows" in err and "agent_events: the target already" in err
    assert _counts(Store(postgres_url))["orders"] == 1  # refused: untouched
    assert main(["store", "copy", "--from", source, "--to", postgres_url, "--replace"]) == 0
    assert _counts(Store(postgres_url))["orders"] == 2
    assert read_events(Store(postgres_url)).set_index("event_id").loc["e002", "reward"] != 99


def test_copy_needs_a_database_target_and_an_existing_source(embedded, tmp_path, postgres_url, capsys):
    assert main(["store", "copy", "--from", str(embedded.path), "--to", str(tmp_path / "x.duckdb")]) == 2
    assert "must name a database store" in capsys.readouterr().err
    assert main(["store", "copy", "--from", str(tmp_path / "none.duckdb"), "--to", postgres_url]) == 2
    assert "no store there to copy" in capsys.readouterr().err


def test_migrate_brings_the_configured_store_up_to_date(postgres_url, monkeypatch, capsys):
    monkeypatch.setenv("AGENT_PIPELINE_STORE_URL", postgres_url)
    assert main(["store", "migrate"]) == 0
    out = capsys.readouterr().out
    assert "events: version 2" in out and "trading: version 2" in out and "kill_switch: version 1" in out
    assert "up to date" in out and Store(postgres_url).exists()


def test_copy_moves_a_home_whose_kill_switch_has_changed(embedded, pipeline_home, postgres_url, capsys):
    """Every change of the embedded switch anchors its version in the store: that table moves too."""
    from agent_pipeline.trading.kill_switch import default_path
    from agent_pipeline.trading.kill_switch_anchor import anchored_switch

    anchored_switch(default_path(pipeline_home), embedded).trip("before the move", by="test")
    assert _counts(embedded)["kill_switch_anchor"] == 1
    assert main(["store", "copy", "--from", str(embedded.path), "--to", postgres_url]) == 0, capsys.readouterr()
    assert _counts(Store(postgres_url))["kill_switch_anchor"] == 1
