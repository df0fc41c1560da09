"""An imported line without a time of its own is stamped with the file's modification time: a guess, so it must
not make an agent look alive (its last-run gauge, which AgentRunsMissing watches, and the freshness check)."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from agent_pipeline.metrics.rollup import aggregate_events
from agent_pipeline.reward import RewardConfig
from agent_pipeline.reward.checks import freshness
from agent_pipeline.store.importer import import_events


@pytest.fixture
def store(each_store):
    """The import's semantics are the same on the DuckDB file and on PostgreSQL."""
    return each_store


def test_undated_imported_lines_are_no_evidence_that_an_agent_is_running(store, tmp_path):
    path = tmp_path / "events.jsonl"
    dated = datetime.now(UTC) - timedelta(days=2)
    path.write_text(json.dumps({"agent": "quiet", "reward": 1.0}) + "\n" +  # stamped with the file time: now
                    json.dumps({"agent": "quiet", "reward": 1.0, "ts": dated.isoformat()}) + "\n" +
                    json.dumps({"agent": "undated_only", "reward": 1.0}) + "\n")
    report = import_events(store, path)
    assert report.inserted == 3 and report.stamped_with_file_time == 2
    with store.connect() as conn:
        totals = aggregate_events(conn)
        fresh = freshness(conn, RewardConfig().history, datetime.now(UTC))
    # imported history, dated or not, is no live run: neither counted nor a last run
    assert "quiet" not in totals and "undated_only" not in totals
    assert not fresh.passed and "2 days" in fresh.description
