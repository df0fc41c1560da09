"""``agent-pipeline import-events``: the exit status says what happened, the report says where to look, and the
history_start advice is always a value the configuration accepts."""

import json

import pytest

from agent_pipeline.cli import main as cli_main
from agent_pipeline.pipeline_settings import Settings


def test_a_committed_import_exits_0_even_with_quarantined_lines_and_odd_timestamps(pipeline_home, tmp_path,
                                                                                    capsys):
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([
        json.dumps({"agent": "a", "reward": 1.0, "ts": 1704067200123456}),  # microseconds: once year 55970
        json.dumps({"agent": "a", "reward": 1.0, "ts": 253402300800000}),  # year 10000 (ms): once a crash
        json.dumps({"agent": "a", "reward": 1.0, "ts": "0001-01-01"}),
        "{broken",
    ]) + "\n")
    assert cli_main(["import-events", str(path), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "1 new" in out and "events span:         2024-01-01 00:00 .. 2024-01-01 00:00" in out
    assert "3 lines quarantined" in out and "SELECT * FROM import_quarantine WHERE file_key" in out
    assert "Traceback" not in out + err and "error" not in err
    assert cli_main(["import-events", str(path), "--quiet"]) == 0  # nothing new is still a committed import


def test_the_advice_is_a_history_start_the_config_loader_accepts(pipeline_home, tmp_path, capsys):
    (pipeline_home / "config.toml").write_text('[reward.history]\nhistory_start = "2024-01-01"\n')
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps({"agent": "a", "reward": 1.0, "ts": "0001-01-01T00:00:00Z"}) + "\n" +
                    json.dumps({"agent": "a", "reward": 1.0, "ts": "1995-03-04T05:06:07Z"}) + "\n")
    assert cli_main(["import-events", str(path), "--quiet"]) == 0
    out, _ = capsys.readouterr()
    line = next(x for x in out.splitlines() if "history_start = " in x)
    advised = line.split('history_start = "')[1].split('"')[0]
    assert advised == "1995-03-04"
    (pipeline_home / "config.toml").write_text(f'[reward.history]\nhistory_start = "{advised}"\n')
    assert Settings.load().reward.history.history_start == advised
    assert cli_main(["import-events", str(path), "--quiet"]) == 0
    assert "history_start = " not in capsys.readouterr().out  # the configured start already covers the events


def test_no_advice_when_the_events_start_after_history_start(pipeline_home, tmp_path, capsys):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"agent": "a", "reward": 1.0, "ts": "2024-06-01T00:00:00Z"}) + "\n")
    assert cli_main(["import-events", str(path), "--quiet"]) == 0
    assert "history_start" not in capsys.readouterr().out


def test_a_broken_config_does_not_fail_a_committed_import(pipeline_home, tmp_path, capsys):
    (pipeline_home / "config.toml").write_text("[reward.history]\nhistory_start = 5\n")
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"agent": "a", "reward": 1.0, "ts": "2022-01-01T00:00:00Z"}) + "\n")
    assert cli_main(["import-events", str(path), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "1 new" in out and "could not read [reward.history]" in err


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"", "empty"),
    (b"\x1f\x8b\x08\x00\xff\xfe\x00\x01garbage", "UTF-8"),
    (b'{"agent": "a"}\n{"reward": 1}\n', "no line of"),  # every line quarantined: nothing imported
])
def test_nothing_imported_exits_1_with_a_message_and_no_traceback(pipeline_home, tmp_path, capsys, content,
                                                                   message):
    path = tmp_path / "input.jsonl"
    if content is not None:
        path.write_bytes(content)
    assert cli_main(["import-events", str(path), "--quiet"]) == 1
    _, err = capsys.readouterr()
    assert message in err and "Traceback" not in err
