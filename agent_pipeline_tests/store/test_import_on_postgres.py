"""``agent-pipeline import-events`` on a PostgreSQL store: the command's exit codes and report as on the file, two
hosts importing one file at once insert it once, and a refused file leaves the database as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from agent_pipeline.cli import main as cli_main
from agent_pipeline.store import Store
from agent_pipeline.store.importer import ImportFileError, import_events

ROOT = Path(__file__).resolve().parents[2]


def snapshot(url: str) -> dict[str, object]:
    """Every table of the database's schema with its row count, and the functions there: what "unchanged" is."""
    with psycopg.connect(url) as raw:
        tables = [r[0] for r in raw.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "ORDER BY 1").fetchall()]
        counts = {t: raw.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        functions = [r[0] for r in raw.execute(
            "SELECT routine_name FROM information_schema.routines WHERE routine_schema = current_schema() "
            "ORDER BY 1").fetchall()]
    return {"tables": counts, "functions": functions}


def lines(*objects) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objects)


def test_the_command_imports_into_the_configured_database_with_the_file_stores_exit_codes(
        pipeline_home, postgres_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AGENT_PIPELINE_STORE_URL", postgres_url)
    path = tmp_path / "events.jsonl"
    path.write_text(lines({"agent": "a", "reward": 1.0, "ts": 1704067200}, {"agent": "a", "reward": 1.0,
                          "ts": 1704067200}, {"event_id": "run-1", "agent": "b", "reward": 2.0}, "{broken"))
    assert cli_main(["import-events", str(path), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "valid events:        3 (3 new, 0 duplicate" in out and "a file not imported before" in out
    assert "1 line quarantined, see: SELECT * FROM import_quarantine WHERE file_key" in out
    assert "Traceback" not in out + err
    assert not (pipeline_home / "agent_pipeline.duckdb").exists()  # nothing went to the host's disk

    with Store(postgres_url).connect() as conn:
        assert conn.execute("SELECT count(*) FROM agent_events").fetchone()[0] == 3
        assert conn.execute("SELECT reason FROM import_quarantine").fetchall() == [("invalid_json",)]

    assert cli_main(["import-events", str(path), "--quiet"]) == 0  # again: nothing new is still a committed import
    out, _ = capsys.readouterr()
    assert "(0 new, 3 duplicate" in out and "seen before, 4 lines already imported" in out
    assert "(0 newly recorded in import_quarantine)" in out

    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines({"agent": "x"}, "[1]"))  # every line quarantined: committed, but nothing imported
    assert cli_main(["import-events", str(bad), "--quiet"]) == 1
    assert "no line of" in capsys.readouterr().err

    refused = tmp_path / "refused.csv"
    refused.write_text("a,b\n1,2\n")
    before = snapshot(postgres_url)
    assert cli_main(["import-events", str(refused), "--quiet"]) == 1
    assert "not JSON lines" in capsys.readouterr().err
    assert snapshot(postgres_url) == before


def test_a_database_that_does_not_answer_fails_with_exit_2_and_no_traceback(pipeline_home, postgres_server,
                                                                            tmp_path, monkeypatch, capsys):
    from agent_pipeline_tests.conftest import free_port

    monkeypatch.setenv("AGENT_PIPELINE_STORE_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    path = tmp_path / "events.jsonl"
    path.write_text(lines({"agent": "a", "reward": 1.0}))
    assert cli_main(["import-events", str(path), "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert "cannot connect" in err and "nothing was imported" in err and "Traceback" not in out + err


@pytest.mark.parametrize("content", [b"", b"\n \n", b"a,b,c\n", b"[1, 2]\n", b"\x1f\x8b\x08\x00\xff\xfe\x00\x01"])
def test_a_refused_file_changes_nothing_in_the_database_not_even_on_a_fresh_one(postgres_url, tmp_path, content):
    path = tmp_path / "input.jsonl"
    path.write_bytes(content)
    fresh = snapshot(postgres_url)
    with pytest.raises(ImportFileError):
        import_events(Store(postgres_url), path)
    assert snapshot(postgres_url) == fresh == {"tables": {}, "functions": []}

    good = tmp_path / "good.jsonl"
    good.write_text(lines({"agent": "a", "reward": 1.0}, "{broken"))
    import_events(Store(postgres_url), good)
    before = snapshot(postgres_url)
    with pytest.raises(ImportFileError):
        import_events(Store(postgres_url), path)
    assert snapshot(postgres_url) == before


def test_two_hosts_importing_the_same_file_at_once_insert_every_line_once(postgres_url, tmp_path):
    path = tmp_path / "events.jsonl"
    count = 20_000
    path.write_text(lines(*({"agent": f"a{i % 7}", "reward": i / count, "ts": 1704067200 + i} for i in range(count)),
                          *({"agent": "same", "reward": 1.0} for _ in range(3))))  # id-less repeats too
    env = {**os.environ, "AGENT_PIPELINE_STORE_URL": postgres_url, "PYTHONPATH": str(ROOT),
           "AGENT_PIPELINE_HOME": str(tmp_path / "home")}
    env.pop("DAGSTER_HOME", None)
    command = [sys.executable, "-m", "agent_pipeline.cli", "import-events", str(path), "--quiet"]
    processes = [subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in processes]
    assert [r[0] for r in results] == [0, 0], results
    news = sorted(next(line for line in r[1].splitlines() if "valid events" in line) for r in results)
    assert news == [f"  valid events:        {count + 3:,} (0 new, {count + 3:,} duplicate or already present, "
                    "with identical content)",
                    f"  valid events:        {count + 3:,} ({count + 3:,} new, 0 duplicate or already present, "
                    "with identical content)"]
    with Store(postgres_url).connect() as conn:
        assert conn.execute("SELECT count(*) FROM agent_events").fetchone()[0] == count + 3
        assert conn.execute("SELECT count(*) FROM import_files").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM import_possible_duplicates").fetchone()[0] == 0


def test_a_config_that_does_not_load_still_imports_into_the_database_the_environment_names(
        pipeline_home, postgres_url, tmp_path, monkeypatch, capsys):
    (pipeline_home / "config.toml").write_text("[reward.history]\nhistory_start = 5\n")
    path = tmp_path / "events.jsonl"
    path.write_text(lines({"agent": "a", "reward": 1.0, "ts": "2022-01-01T00:00:00Z"}))
    monkeypatch.setenv("AGENT_PIPELINE_STORE_URL", postgres_url)
    assert cli_main(["import-events", str(path), "--quiet"]) == 0
    assert "1 new" in capsys.readouterr().out
    assert not (pipeline_home / "agent_pipeline.duckdb").exists()
    with Store(postgres_url).connect() as conn:
        assert conn.execute("SELECT count(*) FROM agent_events").fetchone()[0] == 1

    monkeypatch.delenv("AGENT_PIPELINE_STORE_URL")  # then only the home's file is known, and the command says so
    assert cli_main(["import-events", str(path), "--quiet"]) == 0
    assert "importing into" in capsys.readouterr().err and (pipeline_home / "agent_pipeline.duckdb").exists()
