"""Checks of parameter values that several validators share; each returns what is wrong, never raises.

Validators collect every problem before raising once (:func:`nablatau.errors.raise_if_any`), so these
return booleans or lists of messages. One definition each, so that a forget fraction, a seed or a
learning rate is judged the same way wherever it is given.

    >>> is_number(0.1), is_number(True), is_number(float("nan")), is_int(3), is_int(3.0)
    (True, False, False, True, False)
    >>> forget_fraction_problems(0.15), forget_fraction_problems(1.2)
    ([], ['forget_fraction must be in (0, 1), got 1.2; e.g. 0.1 for 10 %'])
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any


def is_int(value: Any) -> bool:
    """An integer, and not a bool (``True`` would pass as 1)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite real number, and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def as_list(values: Any) -> list:
    """``values`` as a list when it is a non-string iterable, else empty (its own check reports it)."""
    return list(values) if isinstance(values, Iterable) and not isinstance(values, (str, bytes)) else []


def forget_fraction_problems(fraction: Any, *, name: str = "forget_fraction",
                             example: str = "e.g. 0.1 for 10 %") -> list[str]:
    """Why ``fraction`` is not a fraction of a training set to forget, strictly between 0 and 1; empty when it is.

    Args:
        fraction: the value given.
        name: the parameter's name in the message.
        example: what to pass instead, e.g. the paper's fractions.
    """
    if is_number(fraction) and 0 < fraction < 1:
        return []
    return [f"{name} must be in (0, 1), got {fraction!r}; {example}"]
