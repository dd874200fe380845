"""Saturation (streamer/fastpath/load_monitor.py): the pure monitor table-driven, the probe on
trio's MockClock and on the real clock, and the stream gate's 503 for a saturated worker."""

from __future__ import annotations

import random
import time

import pytest
import trio
import trio.testing

from streamer.fastpath.load_monitor import LoadBudget, LoadMonitor, read_rss_bytes, run_load_probe
from streamer.fastpath.stream_gate import GateLimits, StreamGate

MIB = 1024 * 1024
BUDGET = LoadBudget(max_loop_lag_s=0.5, max_rss_bytes=100 * MIB, hold_s=2.0)


@pytest.mark.parametrize(
    ("budget", "samples", "asks", "expect"),
    [
        # lag under the limit never saturates
        (BUDGET, [("lag", 0.49, 0.0)], [0.0, 1.0], [None, None]),
        # one lag sample at the limit: saturated until hold_s after it, then clear
        (BUDGET, [("lag", 0.5, 10.0)], [10.0, 11.99, 12.0], ["loop_lag", "loop_lag", None]),
        # a later sample over the limit extends the hold
        (BUDGET, [("lag", 0.7, 10.0), ("lag", 0.1, 11.0), ("lag", 0.6, 11.5)],
         [12.5, 13.49, 13.5], ["loop_lag", "loop_lag", None]),
        # memory over budget wins over lag; a sample under budget ends it hold_s after the
        # last one over
        (BUDGET, [("lag", 0.9, 5.0), ("rss", 100 * MIB, 5.0), ("rss", 99 * MIB, 6.0)],
         [5.0, 6.5, 7.0], ["memory", "memory", None]),
        (BUDGET, [("rss", 99 * MIB, 5.0)], [5.0], [None]),
        # memory sampled every second and staying over budget stays saturated
        (BUDGET, [("rss", 120 * MIB, float(t)) for t in range(5)], [0.5, 1.5, 3.9, 6.0],
         ["memory", "memory", "memory", "memory"]),
        # ... also when the next sample is late (a stalled loop): memory is a level; it ends
        # only with a sample under budget (the flaky saturated-node test admitted a stream in
        # the gap between the hold's end and the late sample)
        (BUDGET, [("rss", 120 * MIB, 0.0)], [2.0, 2.5, 60.0], ["memory", "memory", "memory"]),
        (BUDGET, [("rss", 120 * MIB, 0.0), ("rss", 50 * MIB, 3.0)], [3.0, 3.1], [None, None]),
        # a zero budget disables that signal
        (LoadBudget(max_rss_bytes=0), [("lag", 30.0, 0.0), ("rss", 10**12, 0.0)], [0.0],
         [None]),
        # by default memory has a budget (1 GiB), lag has none
        (LoadBudget(), [("lag", 30.0, 0.0), ("rss", 1023 * MIB, 0.0)], [0.0], [None]),
        (LoadBudget(), [("rss", 1024 * MIB, 0.0)], [0.0], ["memory"]),
    ],
)
def test_monitor(budget: LoadBudget, samples: list[tuple[str, float, float]],
                 asks: list[float], expect: list[str | None]) -> None:
    monitor = LoadMonitor(budget)
    for kind, value, at in samples:
        if kind == "lag":
            monitor.observe_lag(value, at)
        else:
            monitor.observe_rss(int(value), at)
    assert [monitor.saturated(t) for t in asks] == expect


def test_episodes_are_counted_once_per_episode() -> None:
    monitor = LoadMonitor(BUDGET)
    for t in (0.0, 0.5, 1.0):
        monitor.observe_lag(0.8, t)
    assert monitor.saturated(1.5) == "loop_lag"
    assert monitor.saturated(3.5) is None
    monitor.observe_lag(0.8, 4.0)
    stats = monitor.statistics(4.0)
    assert stats.episodes == {"loop_lag": 2} and stats.saturated == "loop_lag"
    assert stats.max_lag_s == 0.8


def test_a_late_rss_sample_over_budget_is_the_same_episode() -> None:
    monitor = LoadMonitor(BUDGET)
    monitor.observe_rss(120 * MIB, 0.0)
    monitor.observe_rss(120 * MIB, 3.5)  # the loop stalled: 3.5 s between samples
    assert monitor.statistics(3.5).episodes == {"memory": 1}


async def test_probe_samples_rss_before_it_reports_started(
        autojump_clock: trio.testing.MockClock) -> None:
    # A worker over its budget is saturated from its first stream on, not from the probe's
    # first wake-up (a stream accepted in between was admitted).
    monitor = LoadMonitor(BUDGET)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: run_load_probe(
            monitor, interval_s=0.05, read_rss=lambda: 150 * MIB, task_status=task_status))
        assert trio.current_time() == 0.0
        assert monitor.saturated(0.0) == "memory"
        nursery.cancel_scope.cancel()


def test_read_rss_is_this_process() -> None:
    assert 10 * MIB < read_rss_bytes() < 10_000 * MIB


async def test_probe_feeds_rss_on_the_mock_clock(autojump_clock: trio.testing.MockClock) -> None:
    rss = [50 * MIB]
    monitor = LoadMonitor(BUDGET)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: run_load_probe(
            monitor, interval_s=0.05, read_rss=lambda: rss[0], task_status=task_status))
        await trio.sleep(2.0)
        assert monitor.saturated(trio.current_time()) is None
        assert monitor.rss_bytes == 50 * MIB and monitor.max_lag_s < 1e-9  # virtual time
        rss[0] = 150 * MIB
        await trio.sleep(1.01)  # the next RSS sample is at most 1 s away
        assert monitor.saturated(trio.current_time()) == "memory"
        rss[0] = 60 * MIB
        await trio.sleep(1.01 + BUDGET.hold_s)
        assert monitor.saturated(trio.current_time()) is None
        nursery.cancel_scope.cancel()


async def test_probe_outlives_a_failed_rss_read(autojump_clock: trio.testing.MockClock) -> None:
    # A worker at its open-file limit cannot open /proc/self/statm: the probe keeps its last
    # reading and goes on (it used to end the worker, and with it every stream it held).
    readings: list[int | OSError] = [50 * MIB, OSError(24, "Too many open files"), 150 * MIB]

    def read() -> int:
        got = readings.pop(0) if len(readings) > 1 else readings[0]
        if isinstance(got, OSError):
            raise got
        return got

    monitor = LoadMonitor(BUDGET)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: run_load_probe(
            monitor, interval_s=0.05, read_rss=read, task_status=task_status))
        await trio.sleep(1.5)  # the first reading and the failed one
        assert monitor.rss_bytes == 50 * MIB
        await trio.sleep(1.0)
        assert monitor.rss_bytes == 150 * MIB
        assert monitor.saturated(trio.current_time()) == "memory"
        nursery.cancel_scope.cancel()


def _block(seconds: float) -> None:
    time.sleep(seconds)  # stands in for a loop too busy to wake its tasks on time


async def test_probe_sees_a_blocked_loop() -> None:
    monitor = LoadMonitor(LoadBudget(max_loop_lag_s=0.1, hold_s=2.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: run_load_probe(
            monitor, interval_s=0.01, task_status=task_status))
        await trio.sleep(0.05)
        assert monitor.saturated(trio.current_time()) is None
        _block(0.3)
        await trio.sleep(0.05)  # the probe wakes up late and reports it
        assert monitor.saturated(trio.current_time()) == "loop_lag"
        assert monitor.max_lag_s >= 0.25
        nursery.cancel_scope.cancel()


class _Conn:
    close_reason: str | None = None

    def request_close(self, reason: str) -> None:
        pass


async def test_gate_refuses_while_saturated(autojump_clock: trio.testing.MockClock) -> None:
    gate = StreamGate(GateLimits(), rng=random.Random(7),
                      load=LoadMonitor(LoadBudget(max_loop_lag_s=0.5, hold_s=2.0,
                                                  retry_after_s=1)))
    assert gate.enter(_Conn(), "k", "a", "prod") is None
    gate.load.observe_lag(0.6, trio.current_time())
    waits = set()
    for _ in range(100):
        refusal = gate.enter(_Conn(), "k", "a", "prod")
        assert refusal is not None and refusal.status == 503
        assert "saturated" in refusal.message
        waits.add(refusal.retry_after)
    assert waits == {1, 2, 3}  # short (the condition passes) and jittered
    assert gate.saturated_refusals == {"loop_lag": 100} and gate.refused == {503: 100}
    await trio.sleep(2.0)
    assert gate.enter(_Conn(), "k", "a", "prod") is None
    assert len(gate) == 2
