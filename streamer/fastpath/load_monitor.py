"""Is this worker saturated? Event-loop lag and memory against their budgets.

Theory of operation
-------------------
A worker is one trio loop. When it has more to do than it can keep up with (a reconnect
herd's handshakes, cores shared with other processes), every task runs late, the fan-out to
the streams already open included: taking on more streams makes everyone's propagation
worse. A worker whose RSS passes its memory budget risks the OOM killer, which would drop all
of its streams at once. In both cases the right answer to a *new* stream is a cheap 503 with a
short, jittered ``Retry-After``: the client comes back when the herd has passed, or goes to
another node.

:class:`LoadMonitor` is the pure core. It is fed samples with the time they were taken: loop
lag (how late a periodic sleep woke up) and RSS. One sample over budget makes the worker
saturated until ``hold_s`` after it, so the state does not flap from sample to sample. Memory
is a level, not an event: while the latest RSS sample is over budget the worker stays
saturated however long the next sample takes (a loop stalled past ``hold_s`` would otherwise
admit streams, and count a new episode, in the moment before its probe runs again).
:meth:`LoadMonitor.saturated` answers the reason (``"loop_lag"`` or ``"memory"``) or None.
Memory is checked first: it is the harder limit.

:func:`run_load_probe` is the shell: one task that sleeps ``interval_s`` in a loop, feeds the
lateness of each wake-up as lag, and reads ``/proc/self/statm`` once a second for RSS. The
stream gate (:mod:`streamer.fastpath.stream_gate`) asks the monitor before it admits a stream.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import trio

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
# The default memory budget (MiB per worker). A worker holds 20,000 idle streams in about
# 200 MB plus its flag data, so 1 GiB leaves it room for large environments and client-side
# context groups, and stops one whose memory runs away (e.g. distinct contexts by the
# thousand, issue 12) from taking new streams long before the host's OOM killer would end it
# with all of its streams. Every stream kind passes the same gate, client-side ones included.
DEFAULT_WORKER_MEMORY_BUDGET_MIB = 1024


@dataclass(frozen=True, slots=True)
class LoadBudget:
    max_loop_lag_s: float = 0.0  # 0: lag never saturates
    max_rss_bytes: int = DEFAULT_WORKER_MEMORY_BUDGET_MIB * 1024 * 1024  # 0: never saturates
    # Saturated until this long after the last sample over budget; longer than the RSS
    # sampling interval (1 s), so a worker that stays over its memory budget stays saturated.
    hold_s: float = 2.0
    retry_after_s: int = 1  # refusals carry Retry-After drawn from [n, 3 n]


@dataclass(frozen=True, slots=True)
class LoadStatistics:
    last_lag_s: float
    max_lag_s: float  # the largest lag sample seen
    rss_bytes: int
    saturated: str | None
    episodes: dict[str, int]  # how often each reason began


class LoadMonitor:
    def __init__(self, budget: LoadBudget | None = None) -> None:
        self.budget = budget or LoadBudget()
        self.last_lag_s = 0.0
        self.max_lag_s = 0.0
        self.rss_bytes = 0
        self._until: dict[str, float] = {}  # reason -> saturated until this time
        self._rss_over = False  # the latest RSS sample is over budget
        self.episodes: dict[str, int] = {}

    def observe_lag(self, lag_s: float, now: float) -> None:
        self.last_lag_s = lag_s
        self.max_lag_s = max(self.max_lag_s, lag_s)
        limit = self.budget.max_loop_lag_s
        if limit > 0 and lag_s >= limit:
            self._over("loop_lag", now)

    def observe_rss(self, rss_bytes: int, now: float) -> None:
        self.rss_bytes = rss_bytes
        limit = self.budget.max_rss_bytes
        over = limit > 0 and rss_bytes >= limit
        if over:
            self._over("memory", now)
        self._rss_over = over

    def _over(self, reason: str, now: float) -> None:
        if not self._active(reason, now):  # not saturated for it: a new episode
            self.episodes[reason] = self.episodes.get(reason, 0) + 1
        self._until[reason] = now + self.budget.hold_s

    def _active(self, reason: str, now: float) -> bool:
        if reason == "memory" and self._rss_over:
            return True
        return now < self._until.get(reason, -math.inf)

    def saturated(self, now: float) -> str | None:
        """The reason this worker should refuse new streams at ``now``, or None."""
        for reason in ("memory", "loop_lag"):
            if self._active(reason, now):
                return reason
        return None

    def statistics(self, now: float) -> LoadStatistics:
        return LoadStatistics(self.last_lag_s, self.max_lag_s, self.rss_bytes,
                              self.saturated(now), dict(self.episodes))


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None
    return trim


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim``); False without glibc.

    Why: memory freed in the middle of the heap (e.g. the dicts of context groups whose
    streams closed) stays in the process's RSS, and so counts against the memory budget,
    until something trims it: measured with 1,000 client-side groups of 1,000 flags, about
    30 of the 41 MB they took came back only after a trim. A trim costs 1-10 ms, so callers
    do it after freeing, at most once per heartbeat."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


def read_rss_bytes() -> int:
    """This process's resident set size (one small read of ``/proc/self/statm``)."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE_BYTES


async def run_load_probe(
    monitor: LoadMonitor, *, interval_s: float = 0.05, rss_every_s: float = 1.0,
    read_rss: Callable[[], int] = read_rss_bytes,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Feed ``monitor`` until cancelled: loop lag every ``interval_s``, RSS every
    ``rss_every_s``, the first RSS sample before it reports started (so a worker over its
    budget refuses from its first stream on). Costs one wake-up per interval, nothing per
    stream."""
    with contextlib.suppress(OSError):
        monitor.observe_rss(read_rss(), trio.current_time())
    task_status.started()
    next_rss = trio.current_time() + rss_every_s
    while True:
        before = trio.current_time()
        await trio.sleep(interval_s)
        now = trio.current_time()
        monitor.observe_lag(max(0.0, now - before - interval_s), now)
        if now >= next_rss:
            next_rss = now + rss_every_s
            try:
                rss = read_rss()
            except OSError:  # e.g. EMFILE: keep the last reading rather than end the worker
                continue
            monitor.observe_rss(rss, now)
