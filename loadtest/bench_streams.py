"""Stream fan-out benchmark: N idle `/all` streams on one node, K flag changes, measured.

    python3 -m loadtest.bench_streams --connections 15000 --workers 1 --changes 5

Theory of operation
-------------------
1. Start a node (`loadtest.node`), create environment `bench` and flag `bench-flag`.
2. Start C lean client processes (`loadtest.lean_client`, ≤ 15k streams each: the per-process
   fd cap is 20,000) and have them open N streams in total, round-robin over A destination
   addresses 127.0.0.1..A (the stream listener binds 0.0.0.0 when A > 1), each waiting for its
   `put`. Accept rate = streams with their `put` / connect-phase wall time.
3. For each change: tell every client to expect seq n, take t0 = monotonic_ns(), PATCH the flag
   with t0 embedded in its variations, note the acknowledgement time, and wait until every
   client reports that all its live streams have the patch (or the round times out).
   Propagation is measured from t0, so it includes the admin write path (coalescing window,
   SQLite commit, bus hop); the same figures measured from the acknowledgement are reported
   too (negative when a stream had the patch before the admin answer arrived).
4. CPU comes from schedstat (`loadtest.procstats`): the server tree and the clients over the
   round window (from just before the PATCH to the last client's report). RSS per connection
   is the server tree's RSS growth over the connect phase divided by N.

Everything is bounded: the connect phase, every round, every wait on a client, and the client
processes themselves (they exit at their own hard time limit).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import queue
import shlex
import statistics
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
from loadtest.lean_wire import mark_value
from loadtest.node import AdminClient, Node

ENV_KEY = "bench"
FLAG_KEY = "bench-flag"
MAX_PER_CLIENT = 15_000
REPO = Path(__file__).resolve().parents[1]


def marked_flag(seq: int, t0_ns: int) -> dict[str, Any]:
    return {
        "on": True,
        "variations": [mark_value(seq, t0_ns, "a"), mark_value(seq, t0_ns, "b")],
        "fallthrough": {"variation": 0},
        "offVariation": 1,
        "targets": [],
        "rules": [],
        "prerequisites": [],
        "salt": "bench",
    }


class ClientProc:
    """One lean client subprocess, spoken to in JSON lines. A thread drains its stdout."""

    def __init__(self, *, time_limit_s: float, decoder: str) -> None:
        argv = [sys.executable, "-m", "loadtest.lean_client"]
        argv += ["--time-limit", str(time_limit_s), "--decoder", decoder]
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
            msg = self._inbox.get(timeout=left)
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
    window_ms: float  # PATCH sent -> last client report in
    others_cpu_ms: float  # machine busy time in the window not used by server or clients
    bench_cpu_ms: float  # server tree + clients, on-CPU in the window

    def pct(self, p: float, *, from_ack: bool = False) -> float:
        if not self.lat_us:
            return math.nan
        shift = self.ack_ms * 1000 if from_ack else 0.0
        vals = sorted(self.lat_us)
        idx = min(len(vals) - 1, max(0, math.ceil(p / 100 * len(vals)) - 1))
        return (vals[idx] - shift) / 1000


def _hist(values_us: list[int]) -> HdrHistogram:
    h = HdrHistogram(1, 120_000_000, 3)
    for v in values_us:
        h.record_value(max(1, v))
    return h


def _ticks_ms(ticks: int) -> float:
    return ticks * 1000 / procstats.CLOCK_TICKS


def split_connections(n: int, clients: int) -> list[int]:
    base, extra = divmod(n, clients)
    return [base + (1 if i < extra else 0) for i in range(clients)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    n, workers = args.connections, args.workers
    clients_n = args.clients or max(1, math.ceil(n / MAX_PER_CLIENT))
    addresses_n = args.addresses or max(1, math.ceil(n / 20_000))
    if n / clients_n > MAX_PER_CLIENT:
        raise SystemExit(f"{n} connections need at least {math.ceil(n / MAX_PER_CLIENT)} clients")
    addresses = [f"127.0.0.{i + 1}" for i in range(addresses_n)]
    host = "0.0.0.0" if addresses_n > 1 else "127.0.0.1"
    extra = tuple(args.node_arg or ())
    command = shlex.split(args.node_cmd) if args.node_cmd else None
    node = Node(workers=workers, stream_host=host, extra_args=extra, command=command)
    clients: list[ClientProc] = []
    admin: AdminClient | None = None
    out: dict[str, Any] = {"connections": n, "workers": workers, "clients": clients_n,
                           "addresses": addresses_n, "changes": args.changes}  # fmt: skip
    try:
        listeners = node.start()
        admin = node.admin()
        env = admin.create_environment(ENV_KEY, "Bench")
        admin.put_flag(ENV_KEY, FLAG_KEY, marked_flag(0, time.monotonic_ns()))
        time.sleep(0.5)  # let workers settle after start-up before the baseline reading
        tree = procstats.tree_pids(node.pid)
        worker_pids = [p for p in tree if "streamer.worker" in " ".join(procstats.cmdline(p))]
        base = procstats.sample_pids(tree)
        m0 = procstats.machine_cpu()
        limit = 120 + args.changes * (args.round_timeout + 3) + 60
        clients = [ClientProc(time_limit_s=limit, decoder=args.decoder) for _ in range(clients_n)]
        port = listeners.stream[1]
        for c in clients:  # a round trip: the client has started and imported everything
            c.send({"cmd": "stats"})
            c.wait("stats", 30)
        cl0 = procstats.sample_pids([c.pid for c in clients])
        t_connect = time.monotonic()
        for c, k in zip(clients, split_connections(n, clients_n), strict=True):
            c.send({"cmd": "connect", "n": k, "addresses": addresses, "port": port,
                    "path": "/all", "headers": {"Authorization": env["sdkKey"]},
                    "concurrency": args.concurrency,
                    "timeout_s": args.connect_timeout})  # fmt: skip
        phases = [c.wait("connected", args.connect_timeout + 15) for c in clients]
        connect_s = time.monotonic() - t_connect
        after_connect = procstats.sample_pids(tree)
        cl1 = procstats.sample_pids([c.pid for c in clients])
        m1 = procstats.machine_cpu()
        held = sum(p["connected"] for p in phases)
        ours_ms = (after_connect.cpu_ns - base.cpu_ns + cl1.cpu_ns - cl0.cpu_ns) / 1e6
        out["connect"] = {
            "held": held,
            "failed": sum(p["failed"] for p in phases),
            "errors": [p["errors"] for p in phases],
            "wall_s": connect_s,
            "accept_rate_per_s": held / connect_s,
            "accept_rate_per_worker_per_s": held / connect_s / workers,
            "server_cpu_us_per_accept": (after_connect.cpu_ns - base.cpu_ns) / max(1, held) / 1e3,
            "client_cpu_us_per_connect": (cl1.cpu_ns - cl0.cpu_ns) / max(1, held) / 1e3,
            "server_user_s": _ticks_ms(after_connect.utime_ticks - base.utime_ticks) / 1e3,
            "server_sys_s": _ticks_ms(after_connect.stime_ticks - base.stime_ticks) / 1e3,
            "machine_busy_ms": _ticks_ms(m1.busy_ticks - m0.busy_ticks),
            "others_cpu_ms": _ticks_ms(m1.busy_ticks - m0.busy_ticks) - ours_ms,
            "per_worker_sockets": [procstats.socket_fds(p) for p in worker_pids],
            "server_rss_before_kb": base.rss_kb,
            "server_rss_after_kb": after_connect.rss_kb,
            "server_rss_per_conn_kb": (after_connect.rss_kb - base.rss_kb) / max(1, held),
        }
        time.sleep(1.0)  # let the accept burst's garbage and the first heartbeats settle
        rounds: list[RoundResult] = []
        for seq in range(1, args.warmup + args.changes + 1):
            rounds.append(_one_round(seq, admin, node, worker_pids, clients, args))
        measured = rounds[args.warmup :]
        pooled = [v for r in measured for v in r.lat_us]
        h = _hist(pooled)
        out["rounds"] = [_round_dict(r, warm=r.seq <= args.warmup) for r in rounds]
        out["pooled_ms"] = {
            "count": len(pooled),
            **{f"p{p}": h.get_value_at_percentile(p) / 1000 for p in (50, 99, 99.9)},
            "max": h.get_max_value() / 1000,
        }
        rows = [r for r in out["rounds"] if not r["warmup"]]
        out["median_round_ms"] = {
            k: statistics.median(r[f"{k}_ms"] for r in rows) if rows else math.nan
            for k in ("p50", "p99", "max", "p99_from_ack")
        }
        out["all_delivered"] = all(r.received == r.expected == held for r in measured)
        out["final_client_stats"] = []
        for c in clients:
            c.send({"cmd": "stats"})
            out["final_client_stats"].append(c.wait("stats", 10))
        now_workers = [p for p in procstats.tree_pids(node.pid) if p in worker_pids]
        out["workers_replaced"] = len(worker_pids) - len(now_workers)  # died or restarted
    finally:
        for c in clients:
            c.close()
        if admin is not None:
            admin.close()
        rc = node.stop()
        out["node_exit_code"] = rc
        if rc == 0 and out.get("all_delivered"):
            node.remove_data_dir()
        else:
            out["node_dir"] = str(node.data_dir)  # logs kept for a post-mortem
            out["node_log_tail"] = node.output()[-3000:]
    return out


def _one_round(
    seq: int,
    admin: AdminClient,
    node: Node,
    worker_pids: list[int],
    clients: list[ClientProc],
    args: argparse.Namespace,
) -> RoundResult:
    tree = procstats.tree_pids(node.pid)
    s0 = procstats.sample_pids(tree)
    w0 = procstats.sample_pids(worker_pids)
    c0 = procstats.sample_pids([c.pid for c in clients])
    m0 = procstats.machine_cpu()
    for c in clients:
        c.send({"cmd": "expect", "seq": seq, "timeout_s": args.round_timeout})
    t0 = time.monotonic_ns()
    admin.patch_flag(ENV_KEY, FLAG_KEY, {"variations": marked_flag(seq, t0)["variations"]})
    ack_ns = time.monotonic_ns() - t0
    reports = [c.wait("round", args.round_timeout + 10) for c in clients]
    s1 = procstats.sample_pids(tree)
    w1 = procstats.sample_pids(worker_pids)
    c1 = procstats.sample_pids([c.pid for c in clients])
    m1 = procstats.machine_cpu()
    window_ms = (time.monotonic_ns() - t0) / 1e6
    ours_ms = (s1.cpu_ns - s0.cpu_ns + c1.cpu_ns - c0.cpu_ns) / 1e6
    expected = sum(r["expected"] for r in reports)
    received = sum(r["received"] for r in reports)
    events = sum(r["events"] for r in reports)
    lat_us = [v // 1000 for r in reports for v in r["lat_ns"]]
    result = RoundResult(
        seq=seq,
        ack_ms=ack_ns / 1e6,
        expected=expected,
        received=received,
        lat_us=lat_us,
        server_cpu_us_per_client=(s1.cpu_ns - s0.cpu_ns) / max(1, expected) / 1e3,
        worker_cpu_us_per_client=(w1.cpu_ns - w0.cpu_ns) / max(1, expected) / 1e3,
        client_cpu_us_per_event=(c1.cpu_ns - c0.cpu_ns) / max(1, events) / 1e3,
        client_self_cpu_us_per_event=sum(r["cpu_ns"] for r in reports) / max(1, events) / 1e3,
        server_utime_ticks=s1.utime_ticks - s0.utime_ticks,
        server_stime_ticks=s1.stime_ticks - s0.stime_ticks,
        window_ms=window_ms,
        others_cpu_ms=_ticks_ms(m1.busy_ticks - m0.busy_ticks) - ours_ms,
        bench_cpu_ms=ours_ms,
    )
    pause = args.pace - (time.monotonic_ns() - t0) / 1e9
    if pause > 0:
        time.sleep(pause)
    return result


def _round_dict(r: RoundResult, *, warm: bool) -> dict[str, Any]:
    return {
        "seq": r.seq,
        "warmup": warm,
        "ack_ms": r.ack_ms,
        "expected": r.expected,
        "received": r.received,
        "p50_ms": r.pct(50),
        "p99_ms": r.pct(99),
        "max_ms": r.pct(100),
        "p50_from_ack_ms": r.pct(50, from_ack=True),
        "p99_from_ack_ms": r.pct(99, from_ack=True),
        "max_from_ack_ms": r.pct(100, from_ack=True),
        "server_cpu_us_per_client": r.server_cpu_us_per_client,
        "worker_cpu_us_per_client": r.worker_cpu_us_per_client,
        "client_cpu_us_per_event": r.client_cpu_us_per_event,
        "client_self_cpu_us_per_event": r.client_self_cpu_us_per_event,
        "server_user_s": r.server_utime_ticks / procstats.CLOCK_TICKS,
        "server_sys_s": r.server_stime_ticks / procstats.CLOCK_TICKS,
        "window_ms": r.window_ms,
        "others_cpu_ms": r.others_cpu_ms,
        "bench_cpu_ms": r.bench_cpu_ms,
    }


def render(out: dict[str, Any]) -> str:
    c = out["connect"]
    lines = [
        f"connections held      {c['held']} of {out['connections']} "
        f"(failed {c['failed']}; {out['clients']} client procs, {out['addresses']} dest addrs)",
        f"connect phase         {c['wall_s']:.2f} s; accept rate {c['accept_rate_per_s']:.0f}/s "
        f"= {c['accept_rate_per_worker_per_s']:.0f}/s per worker ({out['workers']} workers)",
        f"sockets per worker    {c['per_worker_sockets']}",
        f"CPU per connection    server {c['server_cpu_us_per_accept']:.0f} µs "
        f"(user/sys {c['server_user_s']:.2f}/{c['server_sys_s']:.2f} s), "
        f"client {c['client_cpu_us_per_connect']:.0f} µs; "
        f"other processes used {c['others_cpu_ms']:.0f} ms of CPU during the phase",
        f"server RSS            {c['server_rss_before_kb'] / 1024:.0f} -> "
        f"{c['server_rss_after_kb'] / 1024:.0f} MB = {c['server_rss_per_conn_kb']:.1f} KB/conn",
        "",
        "propagation from t0 (just before the PATCH); 'ack' = PATCH round trip; 'bench' = CPU of",
        "server + clients in the round window; 'others' = CPU of every other process in it",
        "",
        "round  ack ms   recv/expected    p50 ms   p99 ms   max ms  p99-ack | srv µs/cli"
        "  wrk µs/cli  cli µs/ev  srv usr/sys s  bench ms  others ms",
    ]
    for r in out["rounds"]:
        tag = "w" if r["warmup"] else " "
        lines.append(
            f"{r['seq']:>4}{tag} {r['ack_ms']:7.1f}  {r['received']:>7}/{r['expected']:<7}"
            f"{r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['max_ms']:8.1f} {r['p99_from_ack_ms']:8.1f}"
            f" | {r['server_cpu_us_per_client']:10.1f} {r['worker_cpu_us_per_client']:11.1f}"
            f" {r['client_cpu_us_per_event']:10.2f}"
            f"   {r['server_user_s']:.2f}/{r['server_sys_s']:.2f}"
            f"   {r['bench_cpu_ms']:8.0f}  {r['others_cpu_ms']:9.0f}"
        )
    p = out["pooled_ms"]
    m = out["median_round_ms"]
    lines += [
        "",
        f"median measured round: p50 {m['p50']:.1f} ms, p99 {m['p99']:.1f} ms, "
        f"max {m['max']:.1f} ms, p99 from ack {m['p99_from_ack']:.1f} ms",
        f"pooled (measured rounds, {p['count']} deliveries): p50 {p['p50']:.1f} ms, "
        f"p99 {p['p99']:.1f} ms, p99.9 {p['p99.9']:.1f} ms, max {p['max']:.1f} ms",
        f"every stream got every measured change: {out['all_delivered']}",
    ]
    if out.get("workers_replaced"):
        lines.append(f"WARNING: {out['workers_replaced']} worker process(es) ended during the run")
    if "node_dir" in out:
        lines.append(f"node logs kept in {out['node_dir']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="SSE fan-out benchmark against a flagstream node")
    ap.add_argument("--connections", type=int, required=True)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--changes", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured first changes")
    ap.add_argument("--clients", type=int, default=0, help="default: ceil(N / 15000)")
    ap.add_argument("--addresses", type=int, default=0, help="default: ceil(N / 20000)")
    ap.add_argument("--concurrency", type=int, default=256, help="connects in flight per client")
    ap.add_argument("--connect-timeout", type=float, default=120.0)
    ap.add_argument("--round-timeout", type=float, default=20.0)
    ap.add_argument("--pace", type=float, default=1.0, help="seconds between changes")
    ap.add_argument("--decoder", choices=("fast", "shared"), default="fast")
    ap.add_argument("--node-arg", action="append", help="extra argument for flagstream serve")
    ap.add_argument(
        "--node-cmd", help="command to run instead of `flagstream` (its `serve` is appended)"
    )
    ap.add_argument("--json", type=Path, help="write the figures here")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = run(args)
    print(render(out))
    if args.json:
        args.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    return 0 if out.get("all_delivered") else 1


if __name__ == "__main__":
    sys.exit(main())
