"""procstats on synthetic /proc text and a synthetic /proc tree, plus one real self-reading."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from loadtest import procstats


def stat_line(pid: int, comm: str, ppid: int, utime: int, stime: int) -> str:
    # fields after comm, as in proc(5): state ppid pgrp session tty tpgid flags minflt cminflt
    # majflt cmajflt utime stime cutime cstime ...
    return f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194304 10 0 0 0 {utime} {stime} 0 0 20 0 1"


@pytest.mark.parametrize(
    ("text", "ns"),
    [("123456789 2000 17\n", 123456789), ("0 0 0", 0), ("18446744073 1 1\n", 18446744073)],
)
def test_parse_schedstat(text: str, ns: int) -> None:
    assert procstats.parse_schedstat(text) == ns


def test_parse_schedstat_refuses_garbage() -> None:
    with pytest.raises(ValueError):
        procstats.parse_schedstat("12")


@pytest.mark.parametrize(
    ("comm", "ppid", "utime", "stime"),
    [("python3", 1, 250, 40), ("a b) (c", 77, 0, 3), ("(sd-pam)", 2, 9, 9), (")", 5, 1, 2)],
)
def test_parse_stat_counts_fields_from_last_paren(
    comm: str, ppid: int, utime: int, stime: int
) -> None:
    st = procstats.parse_stat(stat_line(4242, comm, ppid, utime, stime))
    assert (st.pid, st.comm, st.state, st.ppid) == (4242, comm, "S", ppid)
    assert (st.utime_ticks, st.stime_ticks) == (utime, stime)


@pytest.mark.parametrize("text", ["", "12 no parens S 1", "12 (x) S 1 2"])
def test_parse_stat_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        procstats.parse_stat(text)


@pytest.mark.parametrize(
    ("text", "kb"),
    [
        ("Name:\tpython3\nVmPeak:\t  9000 kB\nVmRSS:\t    2164 kB\nThreads:\t1\n", 2164),
        ("Name:\tkthreadd\nThreads:\t1\n", 0),
    ],
)
def test_parse_status_rss(text: str, kb: int) -> None:
    assert procstats.parse_status_rss_kb(text) == kb


def fake_proc(root: Path, procs: dict[int, tuple[int, list[int], int]]) -> None:
    """procs: pid -> (ppid, schedstat ns per thread, rss kB)."""
    for pid, (ppid, threads, rss) in procs.items():
        base = root / str(pid)
        (base / "task").mkdir(parents=True)
        (base / "stat").write_text(stat_line(pid, f"p{pid}", ppid, pid, 1) + "\n")
        (base / "status").write_text(f"Name:\tp{pid}\nVmRSS:\t {rss} kB\n")
        (base / "cmdline").write_text(f"python\0-m\0node.worker\0--id\0{pid}\0")
        for i, ns in enumerate(threads):
            (base / "task" / str(pid + i)).mkdir()
            (base / "task" / str(pid + i) / "schedstat").write_text(f"{ns} 5 6\n")
    (root / "self").mkdir()  # non-numeric entries are skipped


def test_tree_walk_and_sample(tmp_path: Path) -> None:
    fake_proc(
        tmp_path,
        {
            10: (1, [1000, 2000], 100),  # root with two threads
            11: (10, [300], 50),
            12: (10, [40], 25),
            13: (11, [5], 5),  # grandchild
            20: (1, [99999], 999),  # not in the tree
        },
    )
    assert procstats.tree_pids(10, tmp_path) == [10, 11, 12, 13]
    sample = procstats.sample_tree(10, tmp_path)
    assert sample.pids == (10, 11, 12, 13)
    assert sample.cpu_ns == 1000 + 2000 + 300 + 40 + 5
    assert sample.rss_kb == 100 + 50 + 25 + 5
    assert (sample.utime_ticks, sample.stime_ticks) == (10 + 11 + 12 + 13, 4)
    assert procstats.cmdline(12, tmp_path)[:3] == ["python", "-m", "node.worker"]


def test_vanished_process_is_skipped(tmp_path: Path) -> None:
    fake_proc(tmp_path, {10: (1, [7], 3)})
    sample = procstats.sample_pids([10, 999], tmp_path)
    assert (sample.cpu_ns, sample.rss_kb) == (7, 3)


def test_real_self_reading_grows_with_work() -> None:
    before = procstats.sample_pids([os.getpid()])
    total = sum(i * i for i in range(300_000))  # burn a little CPU
    after = procstats.sample_pids([os.getpid()])
    assert total > 0
    assert after.cpu_ns > before.cpu_ns
    assert after.rss_kb > 0
    assert os.getpid() in procstats.tree_pids(os.getppid())


@pytest.mark.parametrize(
    ("text", "busy", "idle"),
    [
        ("cpu  100 5 50 1000 20 3 7 2 0 0\ncpu0 50 2 25 500 10 1 3 1 0 0\n", 167, 1020),
        ("intr 1\ncpu  1 2 3 4\n", 6, 4),  # old kernels: fewer columns
    ],
)
def test_parse_proc_stat_cpu(text: str, busy: int, idle: int) -> None:
    cpu = procstats.parse_proc_stat_cpu(text)
    assert (cpu.busy_ticks, cpu.idle_ticks) == (busy, idle)


def test_parse_proc_stat_without_cpu_line() -> None:
    with pytest.raises(ValueError):
        procstats.parse_proc_stat_cpu("cpu0 1 2 3 4\n")


@pytest.mark.parametrize(("text", "expected"), [
    ("32768\t60999\n", (32768, 60999)),
    ("1024 65535\n", (1024, 65535)),
    ("garbage\n", (32768, 60999)),  # unreadable: Linux's default
    (None, (32768, 60999)),
])
def test_ephemeral_port_range(tmp_path: Path, text: str | None, expected: tuple[int, int]
                              ) -> None:
    if text is not None:
        d = tmp_path / "sys" / "net" / "ipv4"
        d.mkdir(parents=True)
        (d / "ip_local_port_range").write_text(text)
    assert procstats.ephemeral_port_range(tmp_path) == expected


LIMITS = """Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            {soft:<20} {hard:<20} files
Max processes             95000                95000                processes
"""


@pytest.mark.parametrize(("soft", "hard", "expect"), [
    ("20000", "20000", 20000), ("1024", "4096", 1024), ("unlimited", "unlimited", None)])
def test_open_file_limit_reads_the_soft_limit(tmp_path: Path, soft: str, hard: str,
                                              expect: int | None) -> None:
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "limits").write_text(LIMITS.format(soft=soft, hard=hard))
    assert procstats.open_file_limit(7, tmp_path) == expect
    assert procstats.open_file_limit(8, tmp_path) is None  # no such process


def test_open_file_limit_of_this_process() -> None:
    assert procstats.open_file_limit(os.getpid()) == resource.getrlimit(
        resource.RLIMIT_NOFILE)[0]
