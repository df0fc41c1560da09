"""Sensor cursors are JSON objects; an empty, corrupt or non-object cursor reads as a fresh start."""

import json


def json_cursor(raw: str | None) -> dict:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
