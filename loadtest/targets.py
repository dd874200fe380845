"""What the stream benchmarks point their clients at: a flagstream node, or a baseline server.

A target starts, tells where streams connect (port, path, headers), publishes one marked change
(t0 embedded, so clients time it), names its processes for CPU and memory readings, and stops.
`FlagstreamTarget` publishes through the admin API (a merge PATCH of the flag's variations);
`BaselineTarget` runs one of `loadtest/baselines` (several processes sharing the port with
SO_REUSEPORT where the server supports it) and publishes by writing a line to each process's
stdin. Only processes started here are ever stopped.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import orjson

from loadtest import procstats
from loadtest.lean_wire import mark_value
from loadtest.node import AdminClient, Node

ENV_KEY = "bench"
FLAG_KEY = "bench-flag"
REPO = Path(__file__).resolve().parents[1]


def marked_flag(seq: int, t0_ns: int, pad_bytes: int = 0) -> dict[str, Any]:
    variations = [mark_value(seq, t0_ns, "a"), mark_value(seq, t0_ns, "b")]
    if pad_bytes:
        variations.append("p" * pad_bytes)  # bigger frames fill a stalled client sooner
    return {
        "on": True, "variations": variations, "fallthrough": {"variation": 0},
        "offVariation": 1, "targets": [], "rules": [], "prerequisites": [], "salt": "bench",
    }  # fmt: skip


class Target(Protocol):
    name: str
    port: int
    path: str
    headers: dict[str, str]

    def start(self) -> None: ...

    def server_pids(self) -> list[int]: ...

    def worker_pids(self) -> list[int]: ...

    def publish(self, seq: int, t0_ns: int) -> float:
        """Publish change `seq`; returns the acknowledgement time in ms (0 when none)."""
        ...

    def stop(self) -> dict[str, Any]: ...


class FlagstreamTarget:
    name = "flagstream"

    def __init__(self, *, workers: int, stream_host: str, extra_args: tuple[str, ...] = (),
                 command: str | None = None, pad_bytes: int = 0) -> None:
        self.node = Node(workers=workers, stream_host=stream_host, extra_args=extra_args,
                         command=shlex.split(command) if command else None)
        self.pad_bytes = pad_bytes
        self.admin: AdminClient | None = None
        self.port = 0
        self.path = "/all"
        self.headers: dict[str, str] = {}
        self._workers: list[int] = []

    def start(self) -> None:
        listeners = self.node.start()
        self.admin = self.node.admin()
        env = self.admin.create_environment(ENV_KEY, "Bench")
        self.admin.put_flag(ENV_KEY, FLAG_KEY, marked_flag(0, time.monotonic_ns(),
                                                           self.pad_bytes))
        self.port = listeners.stream[1]
        self.headers = {"Authorization": env["sdkKey"]}
        self.environment = env
        time.sleep(0.5)  # let workers settle after start-up before the baseline reading
        self._workers = self.find_workers()

    def find_workers(self) -> list[int]:
        return [p for p in procstats.tree_pids(self.node.pid)
                if "node.worker" in " ".join(procstats.cmdline(p))]  # fmt: skip

    def server_pids(self) -> list[int]:
        return procstats.tree_pids(self.node.pid)

    def worker_pids(self) -> list[int]:
        return list(self._workers)

    def refresh_workers(self) -> None:
        self._workers = self.find_workers()

    def publish(self, seq: int, t0_ns: int) -> float:
        assert self.admin is not None
        patch = {"variations": marked_flag(seq, t0_ns, self.pad_bytes)["variations"]}
        self.admin.patch_flag(ENV_KEY, FLAG_KEY, patch)
        return (time.monotonic_ns() - t0_ns) / 1e6

    def stop(self, *, keep_logs: bool = False) -> dict[str, Any]:
        """Stop the node; its temp data dir (and logs) is kept only if asked or if it failed."""
        if self.admin is not None:
            self.admin.close()
        rc = self.node.stop()
        if rc == 0 and not keep_logs:
            self.node.remove_data_dir()
            return {"exit_code": rc}
        return {"exit_code": rc, "data_dir": str(self.node.data_dir)}


BASELINES = {
    "floor": [sys.executable, "-m", "loadtest.baselines.raw_floor"],
    "starlette": [sys.executable, "-m", "loadtest.baselines.starlette_sse"],
    "node": ["node", str(REPO / "loadtest" / "baselines" / "node_sse.js")],
}


class BaselineTarget:
    """`procs` processes of one baseline; only `floor` shares its port (SO_REUSEPORT)."""

    def __init__(self, kind: str, *, procs: int = 1, host: str = "0.0.0.0") -> None:
        if procs > 1 and kind != "floor":
            raise ValueError(f"{kind} runs as one process")
        self.name = kind
        self.kind = kind
        self.procs_n = procs
        self.host = host
        self.procs: list[subprocess.Popen[bytes]] = []
        self.port = 0
        self.path = "/all"
        self.headers: dict[str, str] = {}

    def _spawn(self, port: int) -> int:
        argv = list(BASELINES[self.kind])
        argv += [self.host, str(port)] if self.kind == "node" else [
            "--host", self.host, "--port", str(port)]
        proc = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()  # bounded: the server prints it at once or dies
        if not line.startswith("listening "):
            raise RuntimeError(f"baseline {self.kind} did not start: {line!r}")
        return int(line.split()[1])

    def start(self) -> None:
        self.port = self._spawn(0)
        for _ in range(self.procs_n - 1):
            self._spawn(self.port)
        time.sleep(0.3)

    def crash_restart(self) -> list[int]:
        """SIGKILL every process, then start as many again on the same port at once (the
        floor of a reconnect storm: what a supervisor that restarts instantly could do).
        Returns the killed pids."""
        killed = self.server_pids()
        old, self.procs = self.procs, []
        for p in old:
            p.kill()
        for p in old:
            p.wait(10)
            _close_pipes(p)
        for _ in range(self.procs_n):
            self._spawn(self.port)
        return killed

    def server_pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def worker_pids(self) -> list[int]:
        return self.server_pids()

    def publish(self, seq: int, t0_ns: int) -> float:
        flag = marked_flag(seq, t0_ns) | {"key": FLAG_KEY, "version": seq + 1}
        line = orjson.dumps({"path": f"/flags/{FLAG_KEY}", "data": flag}) + b"\n"
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(line)
            p.stdin.flush()
        return 0.0

    def stop(self) -> dict[str, Any]:
        codes = []
        for p in self.procs:
            _close_stdin(p)  # EOF: every baseline exits on it
            try:
                codes.append(p.wait(10))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(p.wait(5))
            _close_pipes(p)
        return {"exit_codes": codes}


def _close_stdin(p: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):
        if p.stdin is not None:
            p.stdin.close()


def _close_pipes(p: subprocess.Popen[bytes]) -> None:
    _close_stdin(p)
    if p.stdout is not None:
        p.stdout.close()
