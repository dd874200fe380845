"""How many streamer workers one machine can hold (pure; the supervisor reads the machine).

A worker is a process of about 50 MiB of RSS that starts in about half a second of CPU. More
workers than cores buy nothing (each is one trio loop: two per core already let the kernel
overlap one's system calls with the other's Python); far more only cost memory and start-up
time, and a mistyped ``--workers 1000`` would spend minutes starting processes before it
fails for lack of memory. So the node refuses, before it starts anything, a count above the
smaller of:

- ``WORKERS_PER_CPU`` times the CPUs (8 on the 2-CPU reference machine), and
- the machine's memory (MemTotal, not MemAvailable: the answer must not change with what
  other processes use this minute) divided by ``WORKER_RSS_BYTES``.

The open-file limit is not a bound here: the supervisor holds four descriptors per worker
(two listeners, two pipes), far fewer than the 20,000 a process may open.
"""

from __future__ import annotations

from dataclasses import dataclass

WORKERS_PER_CPU = 4
WORKER_RSS_BYTES = 50 * 1024 * 1024  # measured: an idle worker's RSS is 45-50 MiB


@dataclass(frozen=True, slots=True)
class WorkerLimit:
    most: int  # the largest --workers this machine takes
    why: str  # which resource sets it, for the error message


def worker_limit(cpus: int, memory_bytes: int | None) -> WorkerLimit:
    """The bound for a machine with ``cpus`` CPUs and ``memory_bytes`` of memory (None:
    unknown, then only the CPU bound applies)."""
    by_cpu = WORKERS_PER_CPU * max(1, cpus)
    cpu_why = f"{WORKERS_PER_CPU} per CPU, {max(1, cpus)} CPUs"
    if memory_bytes is None:
        return WorkerLimit(by_cpu, cpu_why)
    by_memory = max(1, memory_bytes // WORKER_RSS_BYTES)
    if by_memory < by_cpu:
        return WorkerLimit(by_memory, f"about {WORKER_RSS_BYTES // 2**20} MiB each, "
                                      f"{memory_bytes // 2**20} MiB of memory")
    return WorkerLimit(by_cpu, cpu_why)


def check_workers(requested: int, limit: WorkerLimit) -> str | None:
    """None if ``requested`` workers fit, else the message that says why not."""
    if requested <= limit.most:
        return None
    return (f"--workers {requested} is more than this machine can hold: at most "
            f"{limit.most} ({limit.why})")


def memtotal_bytes(meminfo: str) -> int | None:
    """MemTotal from the text of /proc/meminfo, or None if it is not there."""
    for line in meminfo.splitlines():
        name, _, rest = line.partition(":")
        if name == "MemTotal":
            fields = rest.split()
            if fields and fields[0].isdigit():
                return int(fields[0]) * 1024  # /proc/meminfo counts in kB (KiB)
    return None
