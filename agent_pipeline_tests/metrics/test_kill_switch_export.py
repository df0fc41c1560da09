"""The exported kill switch is the trading domain's fail-closed reading, and a long-lived exporter keeps one reader
per file, so an old "ACTIVE" state restored together with its audit log never reads as current again."""

import shutil

from agent_pipeline.metrics.publish import exposition
from agent_pipeline.trading import KillSwitch
from agent_pipeline_tests.metrics.helpers import samples, value


def _exported(pipeline_home) -> tuple[float, dict]:
    parsed = samples(exposition())
    states = {s: value(parsed, "trading_kill_switch_state", state=s) for s in ("ACTIVE", "REDUCING", "HALTED")}
    return value(parsed, "trading_kill_switch_engaged"), states


def test_a_restored_older_state_is_not_exported_as_current(pipeline_home, tmp_path):
    path = pipeline_home / "kill_switch.json"
    audit = path.with_name(path.name + ".audit.jsonl")
    KillSwitch(path).clear("start")
    assert _exported(pipeline_home) == (0, {"ACTIVE": 1, "REDUCING": 0, "HALTED": 0})
    shutil.copy(path, tmp_path / "state")
    shutil.copy(audit, tmp_path / "audit")
    KillSwitch(path).trip("loss limit")
    assert _exported(pipeline_home)[0] == 1
    shutil.copy(tmp_path / "state", path)  # both files put back as they were while ACTIVE
    shutil.copy(tmp_path / "audit", audit)
    engaged, states = _exported(pipeline_home)
    assert engaged == 1 and states["HALTED"] == 1 and states["ACTIVE"] == 0


def test_a_damaged_state_file_is_exported_as_halted(pipeline_home):
    path = pipeline_home / "kill_switch.json"
    KillSwitch(path).clear("start")
    path.write_text('{"state": "ACTIVE"}')
    assert _exported(pipeline_home) == (1, {"ACTIVE": 0, "REDUCING": 0, "HALTED": 1})
