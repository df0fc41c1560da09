"""One answer to "is this a usable number?" for every module that validates signals, outputs or configuration.

A usable number is an int or float that is not a bool (``True`` is an ``int`` in Python) and is finite; anything
else, including an int too large for a float, is not. Safety checks build on it to fail closed.
"""

from __future__ import annotations

import math
from typing import Any


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
