"""Typed views of JSON values used by clause operators: numbers, timestamps, semantic versions.

Each parser copies the exact acceptance rules of LaunchDarkly's Go evaluator (PROTOCOL.md §4.3),
which is the reference the other SDKs are tested against:

- numbers are JSON numbers only (a ``bool`` is never a number, ``"1"`` is never a number);
- a timestamp is a number of Unix milliseconds (truncated towards zero, as Go's ``int64(f)``) or
  an RFC 3339 string, with Go's deliberate leniencies: a 1-digit hour, up to 9 fractional digits,
  an offset hour up to 99, day-of-month overflow normalised (Feb 30 is Mar 1/2), second 60
  allowed. Timestamps are returned as integer nanoseconds so comparisons are exact;
- a semantic version is SemVer 2.0 where the minor and patch parts may be missing (``"2"`` is
  ``2.0.0``); precedence ignores build metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final, TypeGuard

NS_PER_MS: Final = 1_000_000
_NS_PER_SECOND: Final = 1_000_000_000

# A semantic version as a sort key: (major, minor, patch, is_release, prerelease identifiers).
# An identifier is (0, n, "") when numeric and (1, 0, text) otherwise, so plain tuple order is
# SemVer precedence: numeric identifiers sort before alphanumeric ones, a shorter identifier list
# before a longer one with the same prefix, and a release (is_release=1) after its prereleases.
# Build metadata is not part of the key. Equal keys mean equal precedence.
Semver = tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]


def is_number(value: object) -> TypeGuard[int | float]:
    return (isinstance(value, int | float)) and not isinstance(value, bool)


def to_timestamp_ns(value: object) -> int | None:
    """A context or clause value as nanoseconds since the epoch, or None if it is not a time."""
    if isinstance(value, str):
        return parse_rfc3339_ns(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return int(value) * NS_PER_MS
        except (OverflowError, ValueError):  # inf/nan cannot come from JSON, but be safe
            return None
    return None


def _days_from_civil(year: int, month: int, day: int) -> int:
    # Howard Hinnant's algorithm; valid for every proleptic Gregorian date including year 0.
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


class _Scan:
    """Go's simpleASCIIScanner: reads fields up to a terminator; a NUL or non-ASCII character
    ends any field with the pseudo-terminator ``-2`` and end of input with ``-1``."""

    __slots__ = ("pos", "s")

    def __init__(self, s: str) -> None:
        self.s = s
        self.pos = 0

    def read_until(self, terms: str) -> tuple[str, int]:
        s, start, n = self.s, self.pos, len(self.s)
        i = start
        while i < n:
            ch = s[i]
            if ch == "\0" or ord(ch) > 127:
                self.pos = i
                return s[start:i], -2
            i += 1
            if ch in terms:
                self.pos = i
                return s[start : i - 1], ord(ch)
        self.pos = n
        return s[start:], -1


def _field(sc: _Scan, terms: str, eof_ok: bool, lo_len: int, hi_len: int, hi: int,
           lo: int = 0) -> tuple[int, int] | None:
    text, term = sc.read_until(terms)
    if text == "" or (not eof_ok and term < 0) or not lo_len <= len(text) <= hi_len:
        return None
    if not text.isascii() or not text.isdigit():
        return None
    n = int(text)
    if not lo <= n <= hi:
        return None
    return n, term


@dataclass(frozen=True, slots=True)
class Rfc3339:
    """The fields of an RFC 3339 string as Go's parser reads them, before normalisation.

    ``ns`` is the instant; the other fields let ``clause_values`` tell a strict RFC 3339 date
    from one only Go's leniencies accept."""

    ns: int
    year: int
    month: int
    day: int
    hour_digits: int
    second: int
    fraction_digits: str
    offset_hour: int


def parse_rfc3339(s: str) -> Rfc3339 | None:
    sc = _Scan(s)
    year = _field(sc, "-", False, 4, 4, 9999)
    month = year and _field(sc, "-", False, 2, 2, 12, 1)
    day = month and _field(sc, "tT", False, 2, 2, 31, 1)
    hour_start = sc.pos
    hour = day and _field(sc, ":", False, 1, 2, 23)
    hour_digits = sc.pos - hour_start - 1
    minute = hour and _field(sc, ":", False, 2, 2, 59)
    second = minute and _field(sc, ".Zz+-", False, 2, 2, 60)
    if not (year and month and day and hour and minute and second):
        return None
    term = second[1]
    frac = ""
    if term == ord("."):
        frac, term = sc.read_until("Zz+-")
        if term < 0 or len(frac) > 9 or frac == "" or not (frac.isascii() and frac.isdigit()):
            return None
    nanos = int(frac.ljust(9, "0")) if frac else 0
    offset = offset_hour = 0
    if term in (ord("+"), ord("-")):
        oh = _field(sc, ":", False, 2, 2, 99)
        om = oh and _field(sc, "", True, 2, 2, 59)
        if not (oh and om):
            return None
        offset_hour = oh[0]
        offset = (oh[0] * 60 + om[0]) * 60
        if term == ord("+"):
            offset = -offset
    days = _days_from_civil(year[0], month[0], 1) + day[0] - 1
    seconds = days * 86400 + hour[0] * 3600 + minute[0] * 60 + second[0] + offset
    return Rfc3339(seconds * _NS_PER_SECOND + nanos, year[0], month[0], day[0], hour_digits,
                   second[0], frac, offset_hour)


def days_in_month(year: int, month: int) -> int:
    following = (year + 1, 1) if month == 12 else (year, month + 1)
    return _days_from_civil(*following, 1) - _days_from_civil(year, month, 1)


# Context values repeat across the flags evaluated for one context, and across contexts; the
# parsers are pure, so a bounded cache turns the repeated parses into one dict lookup.
@lru_cache(maxsize=8192)
def parse_rfc3339_ns(s: str) -> int | None:
    parsed = parse_rfc3339(s)
    return None if parsed is None else parsed.ns


def _semver_number(text: str) -> int | None:
    if text == "" or not (text.isascii() and text.isdigit()):
        return None
    if len(text) > 1 and text[0] == "0":
        return None  # leading zeroes are not allowed
    return int(text)


def _valid_identifiers(text: str, *, prerelease: bool) -> bool:
    for ident in text.split("."):
        if ident == "" or not all(c.isascii() and (c.isalnum() or c == "-") for c in ident):
            return False
        if prerelease and len(ident) > 1 and ident.isdigit() and ident[0] == "0":
            return False
    return True


def parse_semver(value: object) -> Semver | None:
    return _parse_semver(value) if isinstance(value, str) else None


@lru_cache(maxsize=8192)
def _parse_semver(value: str) -> Semver | None:
    sc = _Scan(value)
    parts = [0, 0, 0]
    text, term = sc.read_until(".-+")
    for i in range(3):
        if i:
            text, term = sc.read_until(".-+" if i == 1 else "-+")
        if term == -2:
            return None
        n = _semver_number(text)
        if n is None:
            return None
        parts[i] = n
        if term != ord("."):
            break
    prerelease = ""
    if term == ord("-"):
        prerelease, term = sc.read_until("+")
        if prerelease == "" or term == -2 or not _valid_identifiers(prerelease, prerelease=True):
            return None
    if term == ord("+"):
        build, term = sc.read_until("")
        if build == "" or term == -2 or not _valid_identifiers(build, prerelease=False):
            return None
    idents: tuple[tuple[int, int, str], ...] = ()
    if prerelease:
        idents = tuple(
            (0, int(p), "") if _semver_number(p) is not None else (1, 0, p)
            for p in prerelease.split(".")
        )
    return parts[0], parts[1], parts[2], 0 if idents else 1, idents
