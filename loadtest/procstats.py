"""CPU and memory of a process tree, read from /proc (Linux only).

CPU is the on-CPU time the scheduler accounted, in nanoseconds: the first field of
`/proc/<pid>/task/<tid>/schedstat`, summed over every thread of every process in the tree. It
is exact to the nanosecond, unlike `utime`/`stime` in `/proc/<pid>/stat`, which tick at 10 ms
and are too coarse for a 100 ms fan-out round; the ticks are kept too because they split user
from system time. A thread or process that exits between two samples takes its schedstat
with it, so sample windows should not span worker restarts.

RSS is VmRSS from `/proc/<pid>/status`, summed over the tree (shared library pages count once
per process, which is constant across a run and cancels out in before/after differences).

The parsers take text and are tested on synthetic /proc contents; `proc_root` lets tests point
the tree walk at a directory laid out like /proc.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class StatLine:
    pid: int
    comm: str
    state: str
    ppid: int
    utime_ticks: int
    stime_ticks: int


@dataclass(frozen=True, slots=True)
class TreeSample:
    """One reading of a process tree."""

    pids: tuple[int, ...]
    cpu_ns: int  # on-CPU time, all threads, from schedstat
    utime_ticks: int
    stime_ticks: int
    rss_kb: int


def parse_schedstat(text: str) -> int:
    """On-CPU nanoseconds: the first of the three fields `run_ns wait_ns timeslices`."""
    fields = text.split()
    if len(fields) < 3:
        raise ValueError(f"not a schedstat line: {text!r}")
    return int(fields[0])


def parse_stat(text: str) -> StatLine:
    """`/proc/<pid>/stat`. The command name sits in parentheses and may contain both spaces
    and parentheses, so the fields are counted from the last `)`."""
    open_paren = text.find("(")
    close_paren = text.rfind(")")
    if open_paren < 0 or close_paren < open_paren:
        raise ValueError(f"not a stat line: {text[:80]!r}")
    rest = text[close_paren + 2 :].split()
    if len(rest) < 13:
        raise ValueError(f"stat line too short: {text[:80]!r}")
    # after the comm: state(3) ppid(4) ... utime(14) stime(15), numbered as in proc(5)
    return StatLine(
        pid=int(text[:open_paren]),
        comm=text[open_paren + 1 : close_paren],
        state=rest[0],
        ppid=int(rest[1]),
        utime_ticks=int(rest[11]),
        stime_ticks=int(rest[12]),
    )


def parse_status_rss_kb(text: str) -> int:
    """VmRSS in kB from `/proc/<pid>/status`; 0 for a zombie or kernel thread (no VmRSS)."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass(frozen=True, slots=True)
class MachineCpu:
    """Whole-machine CPU time from the `cpu` line of /proc/stat, in clock ticks."""

    busy_ticks: int  # user + nice + system + irq + softirq + steal
    idle_ticks: int  # idle + iowait


def parse_proc_stat_cpu(text: str) -> MachineCpu:
    for line in text.splitlines():
        if line.startswith("cpu "):
            f = [int(x) for x in line.split()[1:]]
            f += [0] * (8 - len(f))
            user, nice, system, idle, iowait, irq, softirq, steal = f[:8]
            return MachineCpu(user + nice + system + irq + softirq + steal, idle + iowait)
    raise ValueError("no aggregate cpu line in /proc/stat")


def machine_cpu(proc_root: Path = PROC) -> MachineCpu:
    """Lets a benchmark show how much CPU processes outside it took during a window."""
    return parse_proc_stat_cpu((proc_root / "stat").read_text())


def ephemeral_port_range(proc_root: Path = PROC) -> tuple[int, int]:
    """`net.ipv4.ip_local_port_range` (low, high); Linux's default when it cannot be read."""
    text = _read(proc_root / "sys" / "net" / "ipv4" / "ip_local_port_range")
    try:
        low, high = (int(v) for v in (text or "").split())
    except ValueError:
        return 32768, 60999
    return low, high


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None  # the process or thread ended while we looked


def parent_map(proc_root: Path = PROC) -> dict[int, list[int]]:
    """ppid -> child pids, for every process visible in `proc_root`."""
    children: dict[int, list[int]] = {}
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        text = _read(entry / "stat")
        if text is None:
            continue
        st = parse_stat(text)
        children.setdefault(st.ppid, []).append(st.pid)
    return children


def tree_pids(root: int, proc_root: Path = PROC) -> list[int]:
    """`root` and all its descendants, breadth first (bounded by the number of processes)."""
    children = parent_map(proc_root)
    out = [root]
    i = 0
    while i < len(out):
        out.extend(sorted(children.get(out[i], [])))
        i += 1
    return out


def cmdline(pid: int, proc_root: Path = PROC) -> list[str]:
    text = _read(proc_root / str(pid) / "cmdline")
    return [] if not text else text.rstrip("\0").split("\0")


def sample_pids(pids: list[int] | tuple[int, ...], proc_root: Path = PROC) -> TreeSample:
    cpu = utime = stime = rss = 0
    for pid in pids:
        base = proc_root / str(pid)
        try:
            tasks = list((base / "task").iterdir())
        except (FileNotFoundError, ProcessLookupError):
            continue
        for task in tasks:
            text = _read(task / "schedstat")
            if text is not None:
                cpu += parse_schedstat(text)
        stat = _read(base / "stat")
        if stat is not None:
            st = parse_stat(stat)
            utime += st.utime_ticks
            stime += st.stime_ticks
        status = _read(base / "status")
        if status is not None:
            rss += parse_status_rss_kb(status)
    return TreeSample(tuple(pids), cpu, utime, stime, rss)


def sample_tree(root: int, proc_root: Path = PROC) -> TreeSample:
    return sample_pids(tree_pids(root, proc_root), proc_root)


def open_file_limit(pid: int, proc_root: Path = PROC) -> int | None:
    """The process's soft RLIMIT_NOFILE from /proc/<pid>/limits (None: unknown or unlimited)."""
    for line in (_read(proc_root / str(pid) / "limits") or "").splitlines():
        if line.startswith("Max open files"):
            soft = line[len("Max open files"):].split()[0]
            return int(soft) if soft.isdigit() else None
    return None


def socket_fds(pid: int, proc_root: Path = PROC) -> int:
    """How many of the process's file descriptors are sockets (its connections, roughly)."""
    count = 0
    try:
        fds = list((proc_root / str(pid) / "fd").iterdir())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    for fd in fds:
        try:
            if os.readlink(fd).startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count
