"""How many destination addresses a benchmark spreads its client connections over."""

from __future__ import annotations

import pytest

from loadtest.rounds import destination_addresses, destination_count


@pytest.mark.parametrize(
    ("n", "port_range", "minimum", "expected"),
    [
        (50_000, (32768, 60999), 2, 6),  # 8,469 per destination: 60 % of the 14,116 even ports
        (8_469, (32768, 60999), 1, 1),
        (8_470, (32768, 60999), 1, 2),
        (2_000, (32768, 60999), 2, 2),  # the minimum
        (50_000, (1024, 65535), 1, 3),  # a wide range needs fewer
        (10, (40000, 40000), 1, 10),  # one port: one connection per destination
    ],
)
def test_destination_count_keeps_each_under_the_parity_half(
    n: int, port_range: tuple[int, int], minimum: int, expected: int
) -> None:
    assert destination_count(n, port_range, minimum=minimum) == expected


def test_destination_addresses_takes_a_given_count_or_computes_one() -> None:
    assert destination_addresses(50_000, count=3) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert destination_addresses(10, minimum=2) == ["127.0.0.1", "127.0.0.2"]
    assert destination_addresses(10, count=2, subnet="127.0.1") == ["127.0.1.1", "127.0.1.2"]
