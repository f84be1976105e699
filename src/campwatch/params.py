"""Numeric parameters checked in one place: the Python API, the CLI's option types and the report
config schema all call :func:`check_number`, so NaN, infinities and out-of-range values are refused
with the same message everywhere (name, value, valid range).

Examples
--------
>>> check_number("alpha", 1e-6, low=0, high=1, low_open=True, high_open=True)
1e-06
>>> check_number("alpha", float("nan"), low=0, high=1)
Traceback (most recent call last):
...
campwatch.params.InvalidParameterError: alpha = nan is not a finite number; give a number in [0, 1]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from campwatch.errors import CampwatchError

__all__ = ["RANGES", "InvalidParameterError", "Range", "check", "check_all", "check_number", "check_threshold"]


class InvalidParameterError(CampwatchError, ValueError):
    """A numeric option or config value is NaN, infinite, of the wrong type, or out of its range."""


@dataclass(frozen=True)
class Range:
    """A closed or open interval, ``None`` for an unbounded side, optionally integers only."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def text(self) -> str:
        if self.low is not None and self.high is not None:
            return (f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "any finite number"

    def check(self, name: str, value: Any) -> float:
        kind = "a whole number" if self.integer else "a number"
        if self.low is None and self.high is None:
            want = f"give a finite {kind[2:]}"
        elif self.low is not None and self.high is not None:
            want = f"give {kind} in {self.text()}"
        else:
            want = f"give {kind} {self.text()}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = (int if self.integer else float)(str(value).strip())
            except ValueError:
                raise InvalidParameterError(f"{name} = {value!r} is not {kind}; {want}") from None
        if not math.isfinite(value):
            raise InvalidParameterError(f"{name} = {value} is not a finite number; {want}")
        if self.integer and value != int(value):
            raise InvalidParameterError(f"{name} = {value} is not a whole number; {want}")
        lo_bad = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        hi_bad = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if lo_bad or hi_bad:
            raise InvalidParameterError(f"{name} = {value:g} is out of range; {want}")
        return int(value) if self.integer else float(value)


def check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, integer: bool = False) -> float:
    """``value`` as a finite float (int with ``integer``) inside the range; else InvalidParameterError."""
    return Range(low, high, low_open, high_open, integer).check(name, value)


#: The range of every numeric parameter a user can set, by its Python name.  The CLI options,
#: the report config and the library functions read their limits from here.
RANGES: dict[str, Range] = {
    "alpha": Range(0, 1, low_open=True, high_open=True),
    "value": Range(),
    "min_area_m2": Range(0),
    "opening_radius": Range(0, integer=True),
    "min_observed_fraction": Range(0, 1),
    "workers": Range(1, integer=True),
    "window_size": Range(1, integer=True),
    "max_cloud_fraction": Range(0, 1),
    "min_valid_fraction": Range(0, 1),
    "min_object_m2": Range(0),
    "misregistration_px": Range(0),
    "max_shift_px": Range(0, low_open=True),
    "min_reliability": Range(0, 1),
}


def check(name: str, value: Any, *, label: str | None = None) -> Any:
    """:data:`RANGES` ``[name]`` applied to ``value`` (None passes: the default applies); ``label`` names it."""
    if value is None:
        return None
    return RANGES[name].check(label or name, value)


def check_all(**values: Any) -> None:
    """:func:`check` each keyword (a :data:`RANGES` name) on its value: the library's entry points call it."""
    for name, value in values.items():
        check(name, value)


def check_threshold(text: Any) -> tuple[str, float | None]:
    """A ``--threshold`` value: ``auto``, ``otsu``, ``ki``, ``chi2`` or a finite number, as (method, value)."""
    t = str(text).strip().lower()
    if t in ("auto", "otsu", "ki", "chi2"):
        return t, None
    try:
        value = float(t)
    except ValueError:
        raise InvalidParameterError(f"threshold = {text!r}: give auto, otsu, ki, chi2 or a finite number") from None
    return "fixed", Range().check("threshold", value)
