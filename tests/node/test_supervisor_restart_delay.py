"""The supervisor's restart policy (node/supervisor.py ``restart_delay``): at once after a
healthy run, exponential backoff for a worker that keeps crashing soon after start."""

from __future__ import annotations

import pytest

from node.supervisor import HEALTHY_RESET_S, RESTART_BACKOFF_MAX_S, restart_delay


@pytest.mark.parametrize(
    ("previous", "ran_for", "expected"),
    [
        (None, 0.5, 0.0),  # the first crash: restart at once, whatever the run time
        (None, 3600.0, 0.0),
        (0.0, 2.0, 1.0),  # crashed again soon after: back off
        (1.0, 2.0, 2.0),
        (8.0, 2.0, 16.0),
        (16.0, 2.0, RESTART_BACKOFF_MAX_S),
        (RESTART_BACKOFF_MAX_S, 2.0, RESTART_BACKOFF_MAX_S),
        (RESTART_BACKOFF_MAX_S, HEALTHY_RESET_S + 1, 0.0),  # healthy for a while: reset
    ],
)
def test_restart_delay(previous: float | None, ran_for: float, expected: float) -> None:
    assert restart_delay(previous, ran_for) == expected


def test_a_crash_loop_backs_off_to_the_cap() -> None:
    delays: list[float] = []
    previous: float | None = None
    for _ in range(8):
        previous = restart_delay(previous, 1.0)
        delays.append(previous)
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
