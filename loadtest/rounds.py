"""The client side of a stream benchmark: lean client processes, the connect phase, timed rounds.

`ClientPool` starts C `loadtest.lean_client` processes (≤ 15k streams each: the per-process fd
cap is 20,000), speaks their JSON-lines protocol (a thread per process drains its stdout), and
measures. A round: every client is told to expect seq n, t0 = monotonic_ns() is taken, the
target publishes the marked change, and the round ends when every client reports that all its
live streams have it (or at the deadline). CPU of the server tree, its workers and the clients
over the round window comes from schedstat (`loadtest.procstats`), and so does the CPU every
other process on the machine used in it ("others"), which says how quiet the box was.
"""

from __future__ import annotations

import contextlib
import math
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from hdrh.histogram import HdrHistogram

from loadtest import procstats
from loadtest.targets import Target

MAX_PER_CLIENT = 15_000
REPO = Path(__file__).resolve().parents[1]


def destination_count(n: int, port_range: tuple[int, int], *, minimum: int = 1,
                      fill: float = 0.6) -> int:
    """How many destination addresses (127.0.0.x) `n` client connections to one port need.

    Linux's `connect()` looks for a free ephemeral port among the ports of one parity first
    (half the range: 14,116 of 32768-60999) and scans all of that half before it tries the
    other: past half the range per destination every connect walks ~14k ports (measured at
    50k on 3 destinations: 81 % of the machine's CPU in `__inet_hash_connect` and
    `__inet_check_established`). Keeping each destination at `fill` of that half keeps the
    search to a few ports."""
    low, high = port_range
    per_destination = max(1, int((high - low + 1) // 2 * fill))
    return max(minimum, math.ceil(n / per_destination))


def destination_addresses(n: int, *, count: int = 0, minimum: int = 1,
                          subnet: str = "127.0.0") -> list[str]:
    """`subnet`.1..A for `n` connections: `count` of them if given, else `destination_count`
    for this machine's `ip_local_port_range`. Another loopback `subnet` gives a second set of
    clients destinations, and so ephemeral ports, of their own."""
    count = count or destination_count(n, procstats.ephemeral_port_range(), minimum=minimum)
    return [f"{subnet}.{i + 1}" for i in range(count)]


class ClientProc:
    """One lean client subprocess, spoken to in JSON lines. A thread drains its stdout."""

    def __init__(self, *, time_limit_s: float, decoder: str, coalesce_ms: float = 0.0) -> None:
        argv = [sys.executable, "-m", "loadtest.lean_client"]
        argv += ["--time-limit", str(time_limit_s), "--decoder", decoder,
                 "--coalesce-ms", str(coalesce_ms)]
        self.proc = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._inbox.put(orjson.loads(line))
        self._inbox.put({"ev": "exited"})

    def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps(cmd) + b"\n")
        self.proc.stdin.flush()

    def wait(self, ev: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"client {self.pid}: no {ev!r} within {timeout_s} s")
            try:
                msg = self._inbox.get(timeout=left)
            except queue.Empty:
                continue
            if msg.get("ev") == ev:
                return msg
            if msg.get("ev") in ("exited", "time_limit"):
                raise RuntimeError(f"client {self.pid} ended while waiting for {ev!r}: {msg}")
            if msg.get("ev") == "error":
                raise RuntimeError(f"client {self.pid}: {msg}")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send({"cmd": "close"})
                self.proc.wait(10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()


@dataclass
class RoundResult:
    seq: int
    ack_ms: float
    expected: int
    received: int
    lat_us: list[int] = field(repr=False)
    server_cpu_us_per_client: float
    worker_cpu_us_per_client: float
    client_cpu_us_per_event: float
    client_self_cpu_us_per_event: float
    server_utime_ticks: int
    server_stime_ticks: int
    window_ms: float  # publish -> last client report in
    others_cpu_ms: float  # machine busy time in the window not used by server or clients
    bench_cpu_ms: float  # server tree + clients, on-CPU in the window

    def pct(self, p: float, *, from_ack: bool = False) -> float:
        if not self.lat_us:
            return math.nan
        shift = self.ack_ms * 1000 if from_ack else 0.0
        vals = sorted(self.lat_us)
        idx = min(len(vals) - 1, max(0, math.ceil(p / 100 * len(vals)) - 1))
        return (vals[idx] - shift) / 1000

    def as_dict(self, *, warm: bool) -> dict[str, Any]:
        return {
            "seq": self.seq, "warmup": warm, "ack_ms": self.ack_ms, "expected": self.expected,
            "received": self.received, "p50_ms": self.pct(50), "p99_ms": self.pct(99),
            "p99_9_ms": self.pct(99.9), "max_ms": self.pct(100),
            "p50_from_ack_ms": self.pct(50, from_ack=True),
            "p99_from_ack_ms": self.pct(99, from_ack=True),
            "max_from_ack_ms": self.pct(100, from_ack=True),
            "server_cpu_us_per_client": self.server_cpu_us_per_client,
            "worker_cpu_us_per_client": self.worker_cpu_us_per_client,
            "client_cpu_us_per_event": self.client_cpu_us_per_event,
            "client_self_cpu_us_per_event": self.client_self_cpu_us_per_event,
            "server_user_s": self.server_utime_ticks / procstats.CLOCK_TICKS,
            "server_sys_s": self.server_stime_ticks / procstats.CLOCK_TICKS,
            "window_ms": self.window_ms, "others_cpu_ms": self.others_cpu_ms,
            "bench_cpu_ms": self.bench_cpu_ms,
        }  # fmt: skip


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, 120_000_000, 3)  # µs, up to 2 minutes, 3 significant digits


def histogram(values_us: list[int]) -> HdrHistogram:
    h = new_histogram()
    for v in values_us:
        h.record_value(max(1, v))
    return h


def ticks_ms(ticks: int) -> float:
    return ticks * 1000 / procstats.CLOCK_TICKS


def split_connections(n: int, clients: int) -> list[int]:
    base, extra = divmod(n, clients)
    return [base + (1 if i < extra else 0) for i in range(clients)]


class ClientPool:
    """C lean client processes that together hold N streams to one target."""

    def __init__(self, clients: int, *, time_limit_s: float, decoder: str = "fast",
                 coalesce_ms: float = 0.0) -> None:
        self.clients = [ClientProc(time_limit_s=time_limit_s, decoder=decoder,
                                   coalesce_ms=coalesce_ms) for _ in range(clients)]
        for c in self.clients:  # a round trip: the client has started and imported everything
            c.send({"cmd": "stats"})
            c.wait("stats", 30)

    @classmethod
    def joined(cls, *pools: ClientPool) -> ClientPool:
        """One pool over the clients of `pools` (no new process): a round counts them all.
        Closing it closes them all."""
        pool = cls.__new__(cls)
        pool.clients = [c for p in pools for c in p.clients]
        return pool

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self.clients]

    def connect(self, target: Target, n: int, addresses: list[str], *, concurrency: int = 256,
                timeout_s: float = 120.0, read: bool = True, paths: list[str] | None = None,
                reconnect: dict[str, float] | None = None) -> list[dict[str, Any]]:
        """Open n streams spread over the clients; returns each client's `connected` answer."""
        shares = split_connections(n, len(self.clients))
        for c, k in zip(self.clients, shares, strict=True):
            if k:
                cmd = {"cmd": "connect", "n": k, "addresses": addresses, "port": target.port,
                       "path": target.path, "paths": paths, "headers": target.headers,
                       "concurrency": concurrency, "timeout_s": timeout_s, "read": read}
                if reconnect is not None:  # absent: the client keeps its earlier setting
                    cmd["reconnect"] = reconnect
                c.send(cmd)
        return [c.wait("connected", timeout_s + 15)
                for c, k in zip(self.clients, shares, strict=True) if k]  # fmt: skip

    def ask(self, cmd: dict[str, Any], ev: str, timeout_s: float) -> list[dict[str, Any]]:
        for c in self.clients:
            c.send(cmd)
        return [c.wait(ev, timeout_s) for c in self.clients]

    def round(self, seq: int, target: Target, *, timeout_s: float = 20.0) -> RoundResult:
        tree = target.server_pids()
        workers = target.worker_pids()
        s0, w0 = procstats.sample_pids(tree), procstats.sample_pids(workers)
        c0, m0 = procstats.sample_pids(self.pids), procstats.machine_cpu()
        for c in self.clients:
            c.send({"cmd": "expect", "seq": seq, "timeout_s": timeout_s})
        t0 = time.monotonic_ns()
        ack_ms = target.publish(seq, t0)
        reports = [c.wait("round", timeout_s + 10) for c in self.clients]
        s1, w1 = procstats.sample_pids(tree), procstats.sample_pids(workers)
        c1, m1 = procstats.sample_pids(self.pids), procstats.machine_cpu()
        window_ms = (time.monotonic_ns() - t0) / 1e6
        ours_ms = (s1.cpu_ns - s0.cpu_ns + c1.cpu_ns - c0.cpu_ns) / 1e6
        expected = sum(r["expected"] for r in reports)
        events = sum(r["events"] for r in reports)
        return RoundResult(
            seq=seq, ack_ms=ack_ms, expected=expected,
            received=sum(r["received"] for r in reports),
            lat_us=[v // 1000 for r in reports for v in r["lat_ns"]],
            server_cpu_us_per_client=(s1.cpu_ns - s0.cpu_ns) / max(1, expected) / 1e3,
            worker_cpu_us_per_client=(w1.cpu_ns - w0.cpu_ns) / max(1, expected) / 1e3,
            client_cpu_us_per_event=(c1.cpu_ns - c0.cpu_ns) / max(1, events) / 1e3,
            client_self_cpu_us_per_event=sum(r["cpu_ns"] for r in reports) / max(1, events) / 1e3,
            server_utime_ticks=s1.utime_ticks - s0.utime_ticks,
            server_stime_ticks=s1.stime_ticks - s0.stime_ticks,
            window_ms=window_ms,
            others_cpu_ms=ticks_ms(m1.busy_ticks - m0.busy_ticks) - ours_ms,
            bench_cpu_ms=ours_ms,
        )  # fmt: skip

    def close(self) -> None:
        for c in self.clients:
            c.close()
