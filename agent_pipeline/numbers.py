"""One answer to "is this a usable number?" for every module that validates signals, outputs or configuration.

A real number is any ``numbers.Real`` (int, float, ``fractions.Fraction``, numpy integers and floats) or a
``decimal.Decimal``, but never a bool (``True`` is an ``int`` in Python, ``numpy.bool_`` is not a number at all).
A usable number is a real number whose float value is finite; an int too large for a float is not. Sizing, the
execution gate's checks and configuration all use these two functions, so a value cannot be "a number" to one
and "not a number" to another (a numpy integer notional once skipped sizing yet passed the gate). Safety checks
build on them to fail closed.
"""

from __future__ import annotations

import math
import numbers
from decimal import Decimal
from typing import Any


def real_number(value: Any) -> float | None:
    """``value`` as a float when it is a real number (not a bool), else None. May be NaN or +-inf.

    An int or Fraction too large for a float becomes +-inf (it is a number, just not a finite one).
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, Decimal)):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
    except (TypeError, ValueError):  # e.g. Decimal('sNaN')
        return math.nan


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite real number (not a bool), else None."""
    number = real_number(value)
    return number if number is not None and math.isfinite(number) else None
