"""Text any store can write: lone surrogates (``"\\ud800"``, which Python strings may hold but UTF-8 cannot
encode) are escaped as ``\\udXXX``, so an agent's odd string never makes an event or a gate decision unwritable."""

from __future__ import annotations

from typing import Any


def utf8_safe(value: Any) -> Any:
    """``value`` with every string in it (dict keys too, lists and dicts nested) encodable as UTF-8; a str
    subclass comes back as an exact ``str``. Other values are returned as they are."""
    if isinstance(value, str):
        text = str.__str__(value)
        try:
            text.encode("utf-8")
            return text
        except UnicodeEncodeError:
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {utf8_safe(k): utf8_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [utf8_safe(v) for v in value]
    return value
