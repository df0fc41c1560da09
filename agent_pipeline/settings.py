"""Where the project's state lives, how its configuration file is read, and the error a bad value raises.

All state (DuckDB files, the kill-switch file) lives under one folder, named by AGENT_PIPELINE_HOME so the
Dagster processes, the daemon and the CLI all address the same files. Configuration is an optional
``config.toml`` in that folder. This module is the low level every domain may import; the tables themselves are
declared in each domain's ``config.py`` (with ``agent_pipeline.config_fields``) and read once, at the edge, by
``agent_pipeline.pipeline_settings.Settings.load``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from agent_pipeline.safe_files import FileTooLarge, read_regular

HOME_ENV = "AGENT_PIPELINE_HOME"
DEFAULT_HOME = Path("~/.agent_pipeline")
CONFIG_FILE = "config.toml"
MAX_CONFIG_BYTES = 1 << 20


class ConfigError(ValueError):
    """A configuration value is missing, unknown or invalid; the message names the table (or entry) and key."""


def pipeline_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The state folder: the argument, else $AGENT_PIPELINE_HOME, else ~/.agent_pipeline. Created if absent."""
    raw = home if home not in (None, "") else os.environ.get(HOME_ENV) or DEFAULT_HOME
    path = Path(raw).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_config(home: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The parsed ``config.toml`` of the state folder, or ``{}`` when there is none (the raw document; only
    ``Settings.load`` should call this)."""
    path = pipeline_home(home) / CONFIG_FILE
    if not os.path.lexists(path):
        return {}
    try:  # a FIFO or device where the file should be is an error, never a hang (a symlink to a file is fine)
        return tomllib.loads(read_regular(path, MAX_CONFIG_BYTES, follow_links=True).decode("utf-8"))
    except (OSError, FileTooLarge, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc
