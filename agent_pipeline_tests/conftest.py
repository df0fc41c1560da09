"""Shared fixtures: every test gets its own AGENT_PIPELINE_HOME, so no test touches a user's state."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "True")


@pytest.fixture(autouse=True)
def pipeline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("AGENT_PIPELINE_HOME", str(home))
    return home


@pytest.fixture
def store(pipeline_home: Path):
    from agent_pipeline.store import Store

    return Store.at_home(pipeline_home)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
