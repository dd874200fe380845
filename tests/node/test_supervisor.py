"""The supervisor's start-up: a bounded --workers, and a stop asked for while workers start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from node.supervisor import machine_worker_limit
from node.worker_limit import WorkerLimit, check_workers, memtotal_bytes, worker_limit

REPO = Path(__file__).resolve().parents[2]
GIB = 1024**3


@pytest.mark.parametrize(("cpus", "memory", "most", "why"), [
    (2, 24 * GIB, 8, "4 per CPU, 2 CPUs"),
    (64, 24 * GIB, 256, "4 per CPU, 64 CPUs"),
    (64, 4 * GIB, 81, "about 50 MiB each, 4096 MiB of memory"),
    (2, None, 8, "4 per CPU, 2 CPUs"),
    (0, None, 4, "4 per CPU, 1 CPUs"),
    (2, 10 * 2**20, 1, "about 50 MiB each, 10 MiB of memory"),
])  # fmt: skip
def test_worker_limit(cpus: int, memory: int | None, most: int, why: str) -> None:
    assert worker_limit(cpus, memory) == WorkerLimit(most, why)


@pytest.mark.parametrize(("requested", "refused"), [(1, False), (8, False), (9, True),
                                                    (1000, True)])
def test_check_workers(requested: int, refused: bool) -> None:
    message = check_workers(requested, WorkerLimit(8, "4 per CPU, 2 CPUs"))
    if refused:
        assert message == (f"--workers {requested} is more than this machine can hold: at "
                           "most 8 (4 per CPU, 2 CPUs)")
    else:
        assert message is None


@pytest.mark.parametrize(("text", "expected"), [
    ("MemTotal:       24582044 kB\nMemFree: 1 kB\n", 24582044 * 1024),
    ("MemFree: 1 kB\n", None),
    ("MemTotal: lots\n", None),
])  # fmt: skip
def test_memtotal(text: str, expected: int | None) -> None:
    assert memtotal_bytes(text) == expected


def test_too_many_workers_is_refused_before_anything_starts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = subprocess.run([sys.executable, "-m", "node.cli", "serve", "--data-dir", str(data),
                        "--workers", "1000", "--stream-bind", "127.0.0.1:0",
                        "--sdk-bind", "127.0.0.1:0", "--admin-bind", "127.0.0.1:0"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    limit = machine_worker_limit()
    assert r.stderr.strip() == (f"flagstream: --workers 1000 is more than this machine can "
                                f"hold: at most {limit.most} ({limit.why})")
    assert not data.exists()  # refused before the data dir was made


def session_members(sid: int) -> list[int]:
    """Processes whose session is ``sid`` (the node runs in a session of its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it exited meanwhile
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp session
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_during_start_up_is_prompt_and_leaves_no_process(tmp_path: Path,
                                                                sig: signal.Signals) -> None:
    # Eight workers start one after another (about 1-2 s each here). A stop once the first
    # worker is up and the second is starting: the node must not finish starting the other
    # six first (the old code took 15 s; now about 1.3 s). It stops the one being spawned,
    # drains the one that is up, and exits 0.
    workers = min(8, machine_worker_limit().most)
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "serve", "--data-dir", str(data),
         "--workers", str(workers), "--stream-bind", "127.0.0.1:0", "--sdk-bind", "127.0.0.1:0",
         "--admin-bind", "127.0.0.1:0", "--admin-token", "test-admin-token"],
        cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output: list[str] = []
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: output.extend(line.rstrip() for line in stdout),
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        # Workers start one at a time: a second child means the first one is up.
        while len(children(proc.pid)) < 2 and proc.poll() is None:
            assert time.monotonic() < deadline, "\n".join(output)
            time.sleep(0.02)
        proc.send_signal(sig)
        sent = time.monotonic()
        code = proc.wait(timeout=60)
        took = time.monotonic() - sent
        reader.join(5)
        assert code == 0, "\n".join(output)
        assert took < 5.0, f"exited {took:.1f} s after {sig.name}\n" + "\n".join(output)
        assert not any(line.startswith("flagstream: ready") for line in output)
        stopped = [line for line in output if line.startswith(f"flagstream: {sig.name} during")]
        assert stopped and stopped[0].endswith(f" of {workers} workers were up); stopping")
        assert session_members(proc.pid) == [], "\n".join(output)
    finally:
        if proc.poll() is None or session_members(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
        stdout.close()
