"""Stream fan-out benchmark: N idle `/all` streams on one node, K flag changes, measured.

    python3 -m loadtest.bench_streams --connections 15000 --workers 1 --changes 5

Theory of operation
-------------------
1. Start a node (`loadtest.node`), create environment `bench` and flag `bench-flag`.
2. Start C lean client processes (`loadtest.rounds.ClientPool` of `loadtest.lean_client`, ≤ 15k
   streams each: the per-process fd cap is 20,000) and have them open N streams in total,
   round-robin over A destination addresses 127.0.0.1..A (the stream listener binds 0.0.0.0
   when A > 1), each waiting for its `put`. Accept rate = streams with their `put` /
   connect-phase wall time.
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
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from loadtest import procstats
from loadtest.rounds import (  # re-exported: bench_eval_streams
    MAX_PER_CLIENT,
    ClientPool,
    ClientProc,
    RoundResult,
    destination_addresses,
    histogram,
    split_connections,
    ticks_ms,
)
from loadtest.targets import FlagstreamTarget

__all__ = ["ClientProc", "build_parser", "main", "render", "run", "split_connections"]


def run(args: argparse.Namespace) -> dict[str, Any]:
    n, workers = args.connections, args.workers
    clients_n = args.clients or max(1, math.ceil(n / MAX_PER_CLIENT))
    if n / clients_n > MAX_PER_CLIENT:
        raise SystemExit(f"{n} connections need at least {math.ceil(n / MAX_PER_CLIENT)} clients")
    addresses = destination_addresses(n, count=args.addresses)
    host = "0.0.0.0" if len(addresses) > 1 else "127.0.0.1"
    target = FlagstreamTarget(workers=workers, stream_host=host,
                              extra_args=tuple(args.node_arg or ()), command=args.node_cmd)
    pool: ClientPool | None = None
    out: dict[str, Any] = {"connections": n, "workers": workers, "clients": clients_n,
                           "addresses": len(addresses), "changes": args.changes}  # fmt: skip
    try:
        target.start()
        tree = target.server_pids()
        worker_pids = target.worker_pids()
        base = procstats.sample_pids(tree)
        m0 = procstats.machine_cpu()
        limit = 120 + args.changes * (args.round_timeout + 3) + 60
        pool = ClientPool(clients_n, time_limit_s=limit, decoder=args.decoder)
        cl0 = procstats.sample_pids(pool.pids)
        t_connect = time.monotonic()
        phases = pool.connect(target, n, addresses, concurrency=args.concurrency,
                              timeout_s=args.connect_timeout)
        connect_s = time.monotonic() - t_connect
        after_connect = procstats.sample_pids(tree)
        cl1 = procstats.sample_pids(pool.pids)
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
            "server_user_s": ticks_ms(after_connect.utime_ticks - base.utime_ticks) / 1e3,
            "server_sys_s": ticks_ms(after_connect.stime_ticks - base.stime_ticks) / 1e3,
            "machine_busy_ms": ticks_ms(m1.busy_ticks - m0.busy_ticks),
            "others_cpu_ms": ticks_ms(m1.busy_ticks - m0.busy_ticks) - ours_ms,
            "per_worker_sockets": [procstats.socket_fds(p) for p in worker_pids],
            "server_rss_before_kb": base.rss_kb,
            "server_rss_after_kb": after_connect.rss_kb,
            "server_rss_per_conn_kb": (after_connect.rss_kb - base.rss_kb) / max(1, held),
        }
        time.sleep(1.0)  # let the accept burst's garbage and the first heartbeats settle
        rounds: list[RoundResult] = []
        for seq in range(1, args.warmup + args.changes + 1):
            t_start = time.monotonic()
            rounds.append(pool.round(seq, target, timeout_s=args.round_timeout))
            pause = args.pace - (time.monotonic() - t_start)
            if pause > 0:
                time.sleep(pause)
        measured = rounds[args.warmup :]
        pooled = [v for r in measured for v in r.lat_us]
        h = histogram(pooled)
        out["rounds"] = [r.as_dict(warm=r.seq <= args.warmup) for r in rounds]
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
        out["final_client_stats"] = pool.ask({"cmd": "stats"}, "stats", 10)
        now_workers = [p for p in target.server_pids() if p in worker_pids]
        out["workers_replaced"] = len(worker_pids) - len(now_workers)  # died or restarted
    finally:
        if pool is not None:
            pool.close()
        stopped = target.stop(keep_logs=not out.get("all_delivered"))
        out["node_exit_code"] = rc = stopped["exit_code"]
        if rc != 0 or not out.get("all_delivered"):
            out["node_dir"] = stopped["data_dir"]  # logs kept for a post-mortem
            out["node_log_tail"] = target.node.output()[-3000:]
    return out


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
    ap.add_argument("--addresses", type=int, default=0, help="default: rounds.destination_count")
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
