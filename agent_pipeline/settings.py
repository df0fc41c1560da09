"""Where the project's state lives and how its optional configuration file is read.

All state (DuckDB files, the kill-switch file) lives under one folder, named by AGENT_PIPELINE_HOME so the
Dagster processes, the daemon and the CLI all address the same files. Configuration is an optional
``config.toml`` in that folder; each domain validates its own section strictly.
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
    """A configuration value is missing, unknown or invalid; the message names which."""


def pipeline_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The state folder: the argument, else $AGENT_PIPELINE_HOME, else ~/.agent_pipeline. Created if absent."""
    raw = home if home not in (None, "") else os.environ.get(HOME_ENV) or DEFAULT_HOME
    path = Path(raw).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_config(home: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The parsed ``config.toml`` of the state folder, or ``{}`` when there is none."""
    path = pipeline_home(home) / CONFIG_FILE
    if not os.path.lexists(path):
        return {}
    try:  # a FIFO or device where the file should be is an error, never a hang (a symlink to a file is fine)
        return tomllib.loads(read_regular(path, MAX_CONFIG_BYTES, follow_links=True).decode("utf-8"))
    except (OSError, FileTooLarge, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc


def config_section(name: str, home: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """One top-level table of the configuration file (``{}`` when absent)."""
    section = load_config(home).get(name, {})
    if not isinstance(section, dict):
        raise ConfigError(f"config.toml: [{name}] must be a table, got {type(section).__name__}")
    return section


def strict_fields(cls: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    """Reject keys a dataclass does not declare, so a misspelt setting fails instead of being ignored."""
    known = set(getattr(cls, "__dataclass_fields__", {}))
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}")
    return values
