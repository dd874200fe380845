"""Clause values per operator (PROTOCOL.md §4.3): the one definition of a usable clause value.

``OPERANDS[op](value)`` is the value as the operator uses it (a float, a time in nanoseconds, a
semantic version, a compiled pattern) or ``Unusable`` with the reason. The evaluator compiles a
clause from the usable values and ignores the others (an SDK treats them as a silent
non-match); the validation refuses exactly the unusable ones, with the reason. So "accepted by
the admin API" and "usable by the evaluator" are one definition.

Where LaunchDarkly's SDKs read a clause value differently, the value is unusable, so that a
flag the admin API accepts means the same in every SDK. The Go evaluator, which the engine
follows for context values, accepts more than the official Python SDK does: a one-digit hour,
a day past the end of its month (Feb 30 is Mar 1 or 2), second 60, an offset hour above 23 and
year 0 in an RFC 3339 date; it truncates Unix milliseconds to a whole number, and keeps
nanoseconds where the Python SDK keeps microseconds. None of these is usable as a clause value.
Semantic versions and regular expressions are read as both SDKs read them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from flagmodel.values import (
    NS_PER_MS,
    Semver,
    days_in_month,
    is_number,
    parse_rfc3339,
    parse_semver,
)

_NS_PER_US: Final = 1_000
_MIN_MS: Final = -62_135_596_800_000  # 0001-01-01T00:00:00Z
_MAX_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


@dataclass(frozen=True, slots=True)
class Unusable:
    """A clause value its operator can never match, and why (fit for a 400 answer)."""

    reason: str


def _any_but_null(v: object) -> object:
    # A missing attribute and a null attribute are the same to every SDK: never a match.
    if v is None:
        return Unusable('clause values for "in" must not be null (a null attribute never matches)')
    return v


def _string(v: object) -> str | Unusable:
    return v if isinstance(v, str) else Unusable("expected a string")


def _number(v: object) -> float | Unusable:
    if is_number(v) and math.isfinite(v):
        return float(v)
    return Unusable("expected a number")


def _regex(v: object) -> re.Pattern[str] | Unusable:
    if not isinstance(v, str):
        return Unusable("expected a regular expression string")
    try:
        return re.compile(v)
    except (re.error, RecursionError, OverflowError) as exc:
        return Unusable(f"regular expression does not compile: {exc}")


def _date_string(v: str) -> int | Unusable:
    t = parse_rfc3339(v)
    if t is None:
        return Unusable(f'"{v}" is not an RFC 3339 date')
    why = None
    if t.year == 0:
        why = "year 0 does not exist"
    elif t.day > days_in_month(t.year, t.month):
        why = f"month {t.month} of {t.year} has {days_in_month(t.year, t.month)} days"
    elif t.hour_digits != 2:
        why = "the hour needs two digits"
    elif t.second == 60:
        why = "second 60 (a leap second) is not read by every SDK"
    elif t.offset_hour > 23:
        why = "the offset hour is above 23"
    elif t.ns % _NS_PER_US:
        why = "it is more precise than a microsecond, which not every SDK keeps"
    return Unusable(f'"{v}" is not a valid date: {why}') if why else t.ns


def _date(v: object) -> int | Unusable:
    if isinstance(v, str):
        return _date_string(v)
    if is_number(v) and math.isfinite(v):
        if v != int(v):
            return Unusable("Unix milliseconds must be a whole number (SDKs round differently)")
        if not _MIN_MS <= v <= _MAX_MS:
            # Past these the SDKs' float milliseconds and Go's int64 nanoseconds lose the value.
            return Unusable("Unix milliseconds must fall in the years 1 to 9999")
        return int(v) * NS_PER_MS
    return Unusable("expected a date (Unix milliseconds or an RFC 3339 string)")


def _semver(v: object) -> Semver | Unusable:
    if not isinstance(v, str):
        return Unusable("expected a semantic version string")
    parsed = parse_semver(v)
    return Unusable(f'"{v}" is not a semantic version') if parsed is None else parsed


def _segment_key(v: object) -> str | Unusable:
    return v if isinstance(v, str) and v != "" else Unusable("expected a segment key")


OPERANDS: Final[dict[str, Callable[[object], object]]] = {
    "in": _any_but_null,
    "startsWith": _string,
    "endsWith": _string,
    "contains": _string,
    "matches": _regex,
    "lessThan": _number,
    "lessThanOrEqual": _number,
    "greaterThan": _number,
    "greaterThanOrEqual": _number,
    "before": _date,
    "after": _date,
    "semVerEqual": _semver,
    "semVerLessThan": _semver,
    "semVerGreaterThan": _semver,
    "segmentMatch": _segment_key,
}


def usable_operands(op: str, values: list[object]) -> list[object]:
    """The values ``op`` can use, parsed; none for an unknown operator."""
    parse = OPERANDS.get(op)
    if parse is None:
        return []
    return [o for o in map(parse, values) if not isinstance(o, Unusable)]
