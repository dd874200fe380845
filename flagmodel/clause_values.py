"""Per-operator checks of clause values (PROTOCOL.md §4.3), used by ``flagmodel.validation``.

The SDKs treat a clause value of the wrong type, or one that fails to parse, as a silent
non-match. A clause that can never match is a mistake in an admin write, so the strict
validation refuses it. Each check returns None for a usable value or the reason it is not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
)
_NUM = r"(?:0|[1-9]\d*)"
_IDENT = r"[0-9A-Za-z-]+"
_SEMVER_RE = re.compile(
    rf"{_NUM}(?:\.{_NUM}(?:\.{_NUM})?)?(?:-{_IDENT}(?:\.{_IDENT})*)?(?:\+{_IDENT}(?:\.{_IDENT})*)?"
)


def _is_number(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (
        isinstance(v, float) and math.isfinite(v)
    )


def _any_primitive(v: Any) -> str | None:
    if v is None or isinstance(v, list | dict):
        return "clause values for \"in\" must be strings, numbers or booleans"
    return None


def _string(v: Any) -> str | None:
    return None if isinstance(v, str) else "expected a string"


def _number(v: Any) -> str | None:
    return None if _is_number(v) else "expected a number"


def _regex(v: Any) -> str | None:
    if not isinstance(v, str):
        return "expected a regular expression string"
    try:
        re.compile(v)
    except re.error as exc:
        return f"regular expression does not compile: {exc}"
    return None


def _date(v: Any) -> str | None:
    if _is_number(v):
        return None
    if not isinstance(v, str):
        return "expected a date (Unix milliseconds or an RFC 3339 string)"
    m = _RFC3339_RE.fullmatch(v)
    if m is None:
        return f'"{v}" is not an RFC 3339 date'
    try:
        y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
        datetime(y, mo, d, h, mi, s)
    except ValueError:
        return f'"{v}" is not a valid date'
    return None


def _semver(v: Any) -> str | None:
    if not isinstance(v, str):
        return "expected a semantic version string"
    if _SEMVER_RE.fullmatch(v) is None:
        return f'"{v}" is not a semantic version'
    return None


def _segment_key(v: Any) -> str | None:
    return None if isinstance(v, str) and v != "" else "expected a segment key"


CLAUSE_VALUE_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "in": _any_primitive,
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
