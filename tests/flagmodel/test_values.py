"""The value parsers: RFC 3339 times with Go's leniencies, semantic versions."""

from __future__ import annotations

from typing import Any

import pytest

from flagmodel.values import parse_rfc3339_ns, parse_semver

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
