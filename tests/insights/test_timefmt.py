"""The admin API's timestamps: milliseconds to ISO-8601 and query text to milliseconds."""

from __future__ import annotations

import pytest

from insights.timefmt import iso_from_ms, ms_from_text


@pytest.mark.parametrize(("ms", "iso"), [
    (0, "1970-01-01T00:00:00.000Z"),
    (1700000000123, "2023-11-14T22:13:20.123Z"),
    (1700000000999, "2023-11-14T22:13:20.999Z"),
    (1796216400005, "2026-12-02T13:00:00.005Z"),
])
def test_iso_round_trip(ms: int, iso: str) -> None:
    assert iso_from_ms(ms) == iso
    assert ms_from_text(iso) == ms


@pytest.mark.parametrize(("text", "ms"), [
    ("1700000000123", 1700000000123),
    ("2023-11-14", 1699920000000),
    ("2023-11-14T22:13:20", 1700000000000),  # no offset: UTC
    ("2023-11-14T23:13:20.123+01:00", 1700000000123),
])
def test_accepted_forms(text: str, ms: int) -> None:
    assert ms_from_text(text) == ms


@pytest.mark.parametrize("text", ["", "-5", "yesterday", "2023-13-01", "1e9",
                                  "99999999999999999999", "1969-12-31T23:59:59Z"])
def test_refused(text: str) -> None:
    with pytest.raises(ValueError):
        ms_from_text(text)
