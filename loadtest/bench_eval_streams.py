"""Propagation of a flag change to client-side ``/eval`` streams, measured from outside.

``python3 -m loadtest.bench_eval_streams --connections 10000 --contexts 1000 --changes 5``

Starts a real ``flagstream serve`` node, creates an environment with ``--flags`` client-side
flags, and opens N ``GET /eval/{envId}/{b64(context)}`` streams through the lean raw-socket
client (:mod:`loadtest.lean_client`), spreading them round-robin over C distinct contexts (so
each context group holds N/C connections). The measured flag has a rule on a context attribute,
so contexts evaluate to different variations; both variations carry the round's marker
(``fsmark:<seq>:<t0>``), so every stream's ``patch`` reports its latency from just before the
admin ``PATCH``. Per round it prints P50/P99/max over all streams and the CPU the node's process
tree used (from before the PATCH to the last delivery): that is the server cost of one change
(store write, bus, evaluation once per context group, per-group frames, the socket writes).
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import time
from typing import Any

import orjson
from hdrh.histogram import HdrHistogram

from loadtest import procstats
from loadtest.bench_streams import ClientProc, split_connections
from loadtest.lean_wire import mark_value
from loadtest.node import Node

ENV_KEY = "bench"
FLAG_KEY = "bench-flag"
MAX_PER_CLIENT = 15_000
CS = {"usingEnvironmentId": True, "usingMobileKey": True}


def marked_flag(seq: int, t0_ns: int) -> dict[str, Any]:
    return {
        "on": True, "salt": "bench", "offVariation": 1, "prerequisites": [], "targets": [],
        "variations": [mark_value(seq, t0_ns, "a"), mark_value(seq, t0_ns, "b")],
        "rules": [{"id": "half", "variation": 1, "clauses": [
            {"attribute": "group", "op": "in", "values": [0, 2, 4, 6, 8]}]}],
        "fallthrough": {"variation": 0}, "clientSideAvailability": CS,
    }  # fmt: skip


def filler_flag(i: int) -> dict[str, Any]:
    return {
        "on": True, "salt": f"f{i}", "offVariation": 0, "prerequisites": [], "targets": [],
        "variations": [False, True], "clientSideAvailability": CS,
        "rules": [{"id": "r", "variation": 1, "clauses": [
            {"attribute": "group", "op": "in", "values": [i % 10]}]}],
        "fallthrough": {"rollout": {"variations": [
            {"variation": 0, "weight": 50000}, {"variation": 1, "weight": 50000}]}},
    }  # fmt: skip


def context_path(env_id: str, i: int) -> str:
    ctx = {"kind": "user", "key": f"user-{i}", "group": i % 10, "plan": "bench"}
    b64 = base64.urlsafe_b64encode(orjson.dumps(ctx)).decode().rstrip("=")
    return f"/eval/{env_id}/{b64}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.connections
    clients_n = max(1, -(-n // MAX_PER_CLIENT))
    node = Node(workers=args.workers)
    clients: list[ClientProc] = []
    out: dict[str, Any] = {"connections": n, "contexts": args.contexts, "workers": args.workers,
                           "flags": args.flags + 1, "rounds": []}
    try:
        listeners = node.start()
        admin = node.admin()
        env = admin.create_environment(ENV_KEY, "Bench")
        for i in range(args.flags):
            admin.put_flag(ENV_KEY, f"filler-{i}", filler_flag(i))
        admin.put_flag(ENV_KEY, FLAG_KEY, marked_flag(0, time.monotonic_ns()))
        time.sleep(0.5)
        tree = procstats.tree_pids(node.pid)
        paths = [context_path(env["clientSideId"], i) for i in range(args.contexts)]
        limit = 120 + args.changes * (args.round_timeout + 3) + 60
        clients = [ClientProc(time_limit_s=limit, decoder="fast") for _ in range(clients_n)]
        t_connect = time.monotonic()
        s0 = procstats.sample_pids(tree)
        for c, k in zip(clients, split_connections(n, clients_n), strict=True):
            c.send({"cmd": "connect", "n": k, "addresses": ["127.0.0.1"],
                    "port": listeners.stream[1], "paths": paths, "headers": {},
                    "concurrency": 256, "timeout_s": 120})
        phases = [c.wait("connected", 140) for c in clients]
        s1 = procstats.sample_pids(tree)
        held = sum(p["connected"] for p in phases)
        out["connect"] = {"held": held, "failed": sum(p["failed"] for p in phases),
                          "wall_s": time.monotonic() - t_connect,
                          "server_cpu_us_per_connect": (s1.cpu_ns - s0.cpu_ns) / max(1, held) / 1e3,
                          "errors": [p["errors"] for p in phases]}
        time.sleep(1.0)
        pooled: list[int] = []
        for seq in range(1, args.warmup + args.changes + 1):
            s0 = procstats.sample_pids(tree)
            for c in clients:
                c.send({"cmd": "expect", "seq": seq, "timeout_s": args.round_timeout})
            t0 = time.monotonic_ns()
            admin.patch_flag(ENV_KEY, FLAG_KEY, {"variations": marked_flag(seq, t0)["variations"]})
            reports = [c.wait("round", args.round_timeout + 10) for c in clients]
            s1 = procstats.sample_pids(tree)
            lat = sorted(v // 1000 for r in reports for v in r["lat_ns"])
            h = HdrHistogram(1, 120_000_000, 3)
            for v in lat:
                h.record_value(max(1, v))
            row = {"seq": seq, "warmup": seq <= args.warmup,
                   "received": len(lat), "expected": sum(r["expected"] for r in reports),
                   "p50_ms": h.get_value_at_percentile(50) / 1000,
                   "p99_ms": h.get_value_at_percentile(99) / 1000,
                   "max_ms": h.get_max_value() / 1000,
                   "server_cpu_ms": (s1.cpu_ns - s0.cpu_ns) / 1e6}
            out["rounds"].append(row)
            if not row["warmup"]:
                pooled += lat
            time.sleep(max(0.0, args.pace - (time.monotonic_ns() - t0) / 1e9))
        measured = [r for r in out["rounds"] if not r["warmup"]]
        h = HdrHistogram(1, 120_000_000, 3)
        for v in pooled:
            h.record_value(max(1, v))
        out["pooled"] = {"p50_ms": h.get_value_at_percentile(50) / 1000,
                         "p99_ms": h.get_value_at_percentile(99) / 1000,
                         "max_ms": h.get_max_value() / 1000}
        out["median_server_cpu_ms_per_change"] = statistics.median(
            r["server_cpu_ms"] for r in measured)
        out["all_delivered"] = all(r["received"] == r["expected"] == held for r in measured)
        admin.close()
    finally:
        for c in clients:
            c.close()
        node.stop()
        node.remove_data_dir()
    return out


def render(out: dict[str, Any]) -> str:
    c = out["connect"]
    lines = [f"{out['connections']} /eval streams, {out['contexts']} contexts, "
             f"{out['flags']} flags, {out['workers']} worker(s)",
             f"connect: held {c['held']} failed {c['failed']} in {c['wall_s']:.1f} s "
             f"({c['server_cpu_us_per_connect']:.0f} µs server CPU per connection)",
             "round  received/expected   P50 ms   P99 ms   max ms   server CPU ms"]
    for r in out["rounds"]:
        lines.append(f"{r['seq']:>5}{' w' if r['warmup'] else '  '} {r['received']:>7}/"
                     f"{r['expected']:<9} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
                     f"{r['max_ms']:>8.1f} {r['server_cpu_ms']:>14.1f}")
    p = out["pooled"]
    lines.append(f"pooled measured rounds: P50 {p['p50_ms']:.1f} ms, P99 {p['p99_ms']:.1f} ms, "
                 f"max {p['max_ms']:.1f} ms; median server CPU per change "
                 f"{out['median_server_cpu_ms_per_change']:.1f} ms; "
                 f"all delivered: {out['all_delivered']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--contexts", type=int, default=1_000)
    p.add_argument("--flags", type=int, default=20, help="client-side filler flags")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--changes", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--pace", type=float, default=1.0)
    p.add_argument("--round-timeout", type=float, default=20.0)
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args(argv)
    out = run(args)
    print(render(out))
    if args.json:
        with open(args.json, "wb") as f:
            f.write(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    return 0 if out["all_delivered"] else 1


if __name__ == "__main__":
    sys.exit(main())
