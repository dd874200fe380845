"""The value parsers: RFC 3339 times with Go's leniencies, semantic versions."""

from __future__ import annotations

import calendar
import math
from typing import Any

import pytest

from flagmodel.values import (
    Rfc3339,
    _parse_semver,
    days_in_month,
    is_number,
    parse_rfc3339,
    parse_rfc3339_ns,
    parse_semver,
    to_timestamp_ns,
)

# -- value parsers ---------------------------------------------------------------------------

RFC3339 = [
    ("1970-01-01T00:00:00Z", 0), ("1970-01-01T00:00:00.5Z", 500_000_000),
    ("1970-01-01T00:00:00.123456789z", 123_456_789), ("1970-01-01T01:00:00+01:00", 0),
    ("1970-01-01t1:00:00-01:00", 7_200_000_000_000),  # 1-digit hour, lowercase t
    ("1970-02-30T00:00:00Z", 60 * 86400 * 10**9),  # day overflow normalised: Mar 2
    ("1970-01-01T00:00:60Z", 60 * 10**9), ("0000-01-01T00:00:00Z", -62167219200 * 10**9),
    ("1970-01-01T00:00:00.1234567891Z", None), ("1970-01-01T00:00:00", None),
    ("1970-01-01T00:00:00.5", None), ("1970-1-01T00:00:00Z", None), ("1970-13-01T00:00:00Z", None),
    ("1970-01-01T24:00:00Z", None), ("1970-01-01 00:00:00Z", None), ("", None),
    ("1970-01-01T00:00:00+1:00", None), ("1970-01-01T00:00:00+01:00x", None),
    ("1970-01-01T00:00:00+99:59", -(99 * 3600 + 59 * 60) * 10**9),
]


@pytest.mark.parametrize(("text", "ns"), RFC3339)
def test_rfc3339(text: str, ns: int | None) -> None:
    assert parse_rfc3339_ns(text) == ns


# What follows the time zone, as Go's parser (go-server-sdk-evaluation ldmodel/parse_time.go)
# reads it: after `Z` it stops reading, so any text is ignored; the offset minutes are read up
# to the end of the input, where a NUL or a non-ASCII character also ends them (its scanner
# reports both as "not ASCII" and the minutes may end the input), while ASCII text makes the
# minutes field too long. DEL (0x7f) is ASCII; U+0080 is the first character that is not.
AFTER_THE_ZONE = [
    ("1970-01-01T00:00:00Zjunk", 0), ("1970-01-01T00:00:00zjunk", 0),
    ("1970-01-01T00:00:00.5Z+01:00", 500_000_000),
    ("1970-01-01T01:00:00+01:00\x00", 0), ("1970-01-01T01:00:00+01:00\x00junk", 0),
    ("1970-01-01T01:00:00+01:00\u0080", 0), ("1970-01-01T01:00:00+01:00\u00e9 x", 0),
    ("1970-01-01T02:00:00-01:30\u00ff", 3 * 3600 * 10**9 + 30 * 60 * 10**9),
    ("1970-01-01T01:00:00+01:00\x7f", None), ("1970-01-01T01:00:00+01:00junk", None),
    ("1970-01-01T01:00:00+01:0\x00", None), ("1970-01-01T01:00:00+01\x00:00", None),
]


@pytest.mark.parametrize(("text", "ns"), AFTER_THE_ZONE)
def test_rfc3339_text_after_the_zone_as_go_reads_it(text: str, ns: int | None) -> None:
    assert parse_rfc3339_ns(text) == ns


SEMVER = [
    ("2", (2, 0, 0, 1, ())), ("2.1", (2, 1, 0, 1, ())), ("2.1.3+b.1", (2, 1, 3, 1, ())),
    ("1.0.0-alpha.1", (1, 0, 0, 0, ((1, 0, "alpha"), (0, 1, "")))),
    ("01.0.0", None), ("1.0.0-01", None), ("1.0.0-", None), ("1.0.0+", None), ("1..0", None),
    ("1.0.0.0", None), ("v1.0.0", None), ("1.0.0-a_b", None), ("1.0.0-é", None), (3, None),
]


@pytest.mark.parametrize(("text", "parsed"), SEMVER)
def test_semver(text: Any, parsed: Any) -> None:
    assert parse_semver(text) == parsed


def test_semver_precedence_follows_the_spec() -> None:
    chain = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
             "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1", "2"]
    keys = [parse_semver(v) for v in chain]
    assert None not in keys
    assert keys == sorted(k for k in keys if k is not None)
    assert len(set(keys)) == len(keys)


@pytest.fixture(autouse=True)
def _cold_caches() -> None:
    # The parsers are memoised; each test starts cold so that it runs the parsing code rather
    # than an answer cached by an earlier test (or by mutmut's clean run before a mutant).
    parse_rfc3339_ns.cache_clear()
    _parse_semver.cache_clear()


def _epoch_ns(*fields: int, nanos: int = 0, offset_s: int = 0) -> int:
    # An independent oracle: the standard library's calendar for a valid date and time.
    return (calendar.timegm((*fields, 0, 0, 0)) - offset_s) * 10**9 + nanos


CIVIL = [  # dates across the calendar's turns; each is midnight UTC
    (1970, 1, 1), (1969, 12, 31), (1970, 3, 1), (2000, 2, 29), (2000, 3, 1), (1900, 2, 28),
    (1900, 3, 1), (2100, 3, 1), (1600, 2, 29), (1600, 3, 1), (1, 1, 1), (399, 12, 31),
    (400, 1, 1), (9999, 12, 31), (2024, 1, 31), (2024, 2, 1), (2024, 4, 30), (2024, 5, 1),
    (2024, 6, 15), (2024, 7, 31), (2024, 8, 1), (2024, 9, 30), (2024, 10, 1), (2024, 11, 30),
    (2024, 12, 1), (2023, 2, 28),
]


@pytest.mark.parametrize("date", CIVIL)
def test_rfc3339_dates_agree_with_the_calendar(date: tuple[int, int, int]) -> None:
    year, month, day = date
    text = f"{year:04d}-{month:02d}-{day:02d}T00:00:00Z"
    assert parse_rfc3339_ns(text) == _epoch_ns(year, month, day, 0, 0, 0)


RFC3339_FIELDS = [  # text → every field Go's parser reads
    ("2020-02-29T1:02:03.45+05:30",
     Rfc3339(_epoch_ns(2020, 2, 29, 1, 2, 3, nanos=450_000_000, offset_s=5 * 3600 + 1800),
             2020, 2, 29, 1, 3, "45", 5)),
    ("1999-12-31T23:59:60.123456789-99:59",
     Rfc3339(_epoch_ns(1999, 12, 31, 23, 59, 0, nanos=123_456_789,
                       offset_s=-(99 * 3600 + 59 * 60)) + 60 * 10**9,
             1999, 12, 31, 2, 60, "123456789", 99)),
    ("2021-06-07T08:09:10z", Rfc3339(_epoch_ns(2021, 6, 7, 8, 9, 10), 2021, 6, 7, 2, 10, "", 0)),
    ("2021-06-07t08:09:10-00:01",
     Rfc3339(_epoch_ns(2021, 6, 7, 8, 10, 10), 2021, 6, 7, 2, 10, "", 0)),
]


@pytest.mark.parametrize(("text", "fields"), RFC3339_FIELDS)
def test_rfc3339_fields(text: str, fields: Rfc3339) -> None:
    assert parse_rfc3339(text) == fields


RFC3339_REFUSED = [
    "197-01-01T00:00:00Z", "19700-01-01T00:00:00Z", "1970-00-01T00:00:00Z",
    "1970-01-00T00:00:00Z", "1970-01-32T00:00:00Z", "1970-01-1T00:00:00Z",
    "1970-01-01T123:00:00Z", "1970-01-01T:00:00Z", "1970-01-01T00:60:00Z",
    "1970-01-01T00:0:00Z", "1970-01-01T00:00:61Z", "1970-01-01T00:00:0Z",
    "1970-01-01T00:00:00.Z", "1970-01-01T00:00:00.5aZ", "1970-01-01T00:00:00.+01:00",
    "1970-01-01T00:00:00+01", "1970-01-01T00:00:00+01:", "1970-01-01T00:00:00+01:5",
    "1970-01-01T00:00:00+01:60", "1970-01-01T00:00:00+100:00", "1970-01-01T00:00:00+0a:00",
    "1970-01-01T00:00:00\x00Z", "1970-01-01T00:00:0\x00Z", "1970-01-01T00:00:00.5\x00Z",
    "1970-01-01T00:00:00é", "1970-01-01T00:00:00.5é", "١٩٧٠-01-01T00:00:00Z",
    "1970", "1970-", "1970-01", "1970-01-01", "1970-01-01T00", "1970-01-01T00:00",
    "-970-01-01T00:00:00Z", "1970-+1-01T00:00:00Z",
    # one digit too many, with a value that would be in range
    "01970-01-01T00:00:00Z", "1970-001-01T00:00:00Z", "1970-01-001T00:00:00Z",
    "1970-01-01T001:00:00Z", "1970-01-01T00:001:00Z", "1970-01-01T00:00:001Z",
    "1970-01-01T00:00:00+001:00", "1970-01-01T00:00:00+01:001",
    # a separator where another one belongs
    "1970X01-01T00:00:00Z", "1970-01X01T00:00:00Z", "1970-01-01X00:00:00Z",
    "1970-01-01T00X00:00Z", "1970-01-01T00:00X00Z", "1970-01-01T00:00:00X",
    "1970-01-01T00:00:00.5X", "1970-01-01T00:00:00+01X00", "1970-01-01T00:00:00+01:00X",
    "1970-01-01T00:00:00+01:00\x7f",  # DEL is ASCII: part of the field, which is then too long
]


@pytest.mark.parametrize("text", RFC3339_REFUSED)
def test_rfc3339_refused(text: str) -> None:
    assert parse_rfc3339(text) is None
    assert parse_rfc3339_ns(text) is None


TIMESTAMPS: list[tuple[Any, int | None]] = [
    (0, 0), (1500, 1_500_000_000), (-1500, -1_500_000_000), (1.9, 1_000_000),
    (-1.9, -1_000_000),  # truncated towards zero, as Go's int64(f)
    (1e15, 10**21), ("1970-01-01T00:00:01Z", 10**9), ("bad", None), (True, None),
    (False, None), (None, None), ([0], None), ({"t": 0}, None), (math.inf, None),
    (-math.inf, None), (math.nan, None),
]


@pytest.mark.parametrize(("value", "ns"), TIMESTAMPS)
def test_to_timestamp_ns(value: Any, ns: int | None) -> None:
    assert to_timestamp_ns(value) == ns


@pytest.mark.parametrize(("value", "expected"), [
    (0, True), (-3, True), (1.5, True), (True, False), (False, False), ("1", False),
    (None, False), ([1], False),
])
def test_is_number(value: Any, expected: bool) -> None:
    assert is_number(value) is expected


@pytest.mark.parametrize(("year", "month", "days"), [
    (2019, 1, 31), (2019, 2, 28), (2020, 2, 29), (1900, 2, 28), (2000, 2, 29), (2019, 3, 31),
    (2019, 4, 30), (2019, 6, 30), (2019, 9, 30), (2019, 11, 30), (2019, 12, 31), (0, 2, 29),
])
def test_days_in_month(year: int, month: int, days: int) -> None:
    assert days_in_month(year, month) == days


SEMVER_MORE = [
    ("10.20.30", (10, 20, 30, 1, ())),
    ("1.2-rc", (1, 2, 0, 0, ((1, 0, "rc"),))),
    ("1-rc.1", (1, 0, 0, 0, ((1, 0, "rc"), (0, 1, "")))),
    ("1.2+b", (1, 2, 0, 1, ())),
    ("1.2.3-alpha+build", (1, 2, 3, 0, ((1, 0, "alpha"),))),
    ("1.2.3-rc.1+b.2", (1, 2, 3, 0, ((1, 0, "rc"), (0, 1, "")))),
    ("1.0.0-alpha.10", (1, 0, 0, 0, ((1, 0, "alpha"), (0, 10, "")))),
    ("1.2.3-0", (1, 2, 3, 0, ((0, 0, ""),))),  # a single zero is a number
    ("1.2.3-0a", (1, 2, 3, 0, ((1, 0, "0a"),))),
    ("1.2.3-x-y", (1, 2, 3, 0, ((1, 0, "x-y"),))),
    ("1.0.0-a-.-b", (1, 0, 0, 0, ((1, 0, "a-"), (1, 0, "-b")))),
    ("1.2.3+001", (1, 2, 3, 1, ())),  # build identifiers may have leading zeroes
    ("0.0.0", (0, 0, 0, 1, ())),
    ("1.2.3-00", None), ("1.2.3-a..b", None), ("1.2.3\x00", None), ("1.2\x00.3", None),
    ("1-\x00", None), ("1+b\x00", None), ("1.2.3+é", None), ("1.2.3-rc+", None),
    ("1.2.3+a+b", None), ("", None), ("1.", None), ("1.2.", None), (".1", None),
    ("1.02.3", None), ("1.2.03", None), ("1.2.3-a.01", None), ("1.2.3-é", None),
    ("1.2.3-a b", None), ("1.2.3+a_b", None), ("1.2.3+a..b", None), ("-1.2.3", None),
    (None, None), (1.2, None),
]


@pytest.mark.parametrize(("text", "parsed"), SEMVER_MORE)
def test_semver_more(text: Any, parsed: Any) -> None:
    assert parse_semver(text) == parsed
