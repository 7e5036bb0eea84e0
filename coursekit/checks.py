"""Argument checks shared by every component: one clear `ValueError` per bad value."""

import math
import numbers


def check_number(name, value, *, low=None, high=None, low_open=False, high_open=False):
    """Return `value` if it is a real number inside the given bounds.

    Raises `ValueError` naming the argument, the value and the allowed range
    otherwise. `low_open`/`high_open` exclude the bound itself. Values that are
    not plain numbers (schedules, callables, tensors) are returned unchecked.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    value_ok = not math.isnan(value)
    if value_ok and low is not None:
        value_ok = value > low if low_open else value >= low
    if value_ok and high is not None:
        value_ok = value < high if high_open else value <= high
    if not value_ok:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        low_text = "-inf" if low is None else f"{low:g}"
        high_text = "inf" if high is None else f"{high:g}"
        raise ValueError(f"`{name}` must be in {left}{low_text}, {high_text}{right}; received {name}={value!r}")
    return value


def check_fraction(name, value):
    """A number in [0, 1): momentum, beta, decay rate, dropout rate."""
    return check_number(name, value, low=0.0, high=1.0, high_open=True)


def check_positive(name, value):
    """A number > 0: epsilon, batch size, and the like."""
    return check_number(name, value, low=0.0, low_open=True)


def check_non_negative(name, value):
    """A number >= 0: learning rate, stddev, weight-decay lambda."""
    return check_number(name, value, low=0.0)
