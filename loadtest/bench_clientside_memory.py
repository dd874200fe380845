"""Worker memory for client-side streams with distinct contexts, before, during and after.

``python3 -m loadtest.bench_clientside_memory --flags 1000 --streams 1000 --baseline-rev 5cf78e2``

Starts a real ``flagstream serve`` node with one worker, imports ``--flags`` client-side
flags (plus one marked flag, :func:`loadtest.bench_eval_streams.marked_flag`), opens a few
server-side ``/all`` watcher streams, then ``--streams`` client-side ``/eval`` streams, each
with a DISTINCT context (so each is a context group of its own), through the lean raw-socket
client. It prints the worker's RSS (VmRSS, :mod:`loadtest.procstats`) with the flags loaded,
with the streams open, 2 s after they closed and again after ``--after-s`` (past one
heartbeat, when the old code pruned its groups). It also changes the marked flag twice and
reports how many streams got each change and the slowest delivery: ``--during-s`` after the
client-side streams began to connect (the ``/all`` watchers: does the environment actor still
serve server-side streams while it evaluates new contexts?), and once they are all open (the
watchers and every ``/eval`` stream).

``--layouts`` instead measures in-process (tracemalloc, 200 groups) what one context group of
``--flags`` flags costs in each way of caching its entries that issue 12 considered.

``--baseline-rev REV`` runs the same scenario first against that revision of this repository
(``git archive`` into a temporary directory, run from there), so both figures come from the
same run on the same machine.
"""

from __future__ import annotations

import argparse
import array
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bus.envelope import ItemChange
from flagmodel import Context, parse_context
from loadtest import procstats
from loadtest.bench_eval_streams import CS, context_path, filler_flag, marked_flag
from loadtest.node import AdminClient, Node
from loadtest.rounds import ClientProc
from streamer.clientside.client_groups import ClientGroups, evaluate_entries, payload_json
from streamer.clientside.client_model import EvalModel
from streamer.environments.envstate import EnvState

ENV_KEY = "mem"
FLAG_KEY = "marked"
WATCHERS = 5
IMPORT_CHUNK = 1000  # flags per import request (the admin API takes 1 MiB bodies)
REPO = Path(__file__).resolve().parents[1]


def worker_rss_mb(node: Node) -> float:
    workers = [p for p in procstats.tree_pids(node.pid)
               if "node.worker" in " ".join(procstats.cmdline(p))]  # fmt: skip
    if len(workers) != 1:
        raise RuntimeError(f"expected one worker, found {workers}")
    return procstats.sample_pids(workers).rss_kb / 1024


def import_flags(node: Node, n: int) -> None:
    admin = node.admin()
    try:
        for start in range(0, n, IMPORT_CHUNK):
            flags = {f"filler-{i}": filler_flag(i) | {"key": f"filler-{i}", "version": 1}
                     for i in range(start, min(n, start + IMPORT_CHUNK))}
            status, answer = admin.request("POST", f"/api/v1/environments/{ENV_KEY}/import",
                                           {"flags": flags, "segments": {}})
            if status != 200:
                raise RuntimeError(f"import -> {status}: {answer!r}")
    finally:
        admin.close()


def scenario(label: str, node: Node, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"label": label}
    clients: list[ClientProc] = []
    try:
        listeners = node.start()
        admin = node.admin()
        env = admin.create_environment(ENV_KEY, "Memory")
        import_flags(node, args.flags)
        admin.put_flag(ENV_KEY, FLAG_KEY, marked_flag(0, time.monotonic_ns())
                       | {"clientSideAvailability": CS})
        time.sleep(2.0)
        out["rss_loaded_mb"] = worker_rss_mb(node)
        port = listeners.stream[1]
        limit = 60 + args.connect_timeout + args.after_s + 60
        watch = ClientProc(time_limit_s=limit, decoder="fast")
        clients.append(watch)
        watch.send({"cmd": "connect", "n": WATCHERS, "addresses": ["127.0.0.1"], "port": port,
                    "paths": ["/all"], "headers": {"Authorization": env["sdkKey"]},
                    "concurrency": WATCHERS, "timeout_s": 60})
        watch.wait("connected", 70)
        evals = ClientProc(time_limit_s=limit, decoder="fast")
        clients.append(evals)
        t0 = time.monotonic()
        evals.send({"cmd": "connect", "n": args.streams, "addresses": ["127.0.0.1"],
                    "port": port, "paths": [context_path(env["clientSideId"], i)
                                            for i in range(args.streams)],
                    "headers": {}, "concurrency": 64, "timeout_s": args.connect_timeout})
        time.sleep(args.during_s)  # the client-side streams are still connecting
        out["change_all_connecting"] = change_round(admin, [watch], 1, args.round_timeout)[0]
        phase = evals.wait("connected", args.connect_timeout + 20)
        out["connect"] = {"held": phase["connected"], "failed": phase["failed"],
                          "wall_s": time.monotonic() - t0}
        time.sleep(2.0)
        out["rss_open_mb"] = worker_rss_mb(node)
        out["change_all"], out["change_eval"] = change_round(admin, clients, 2,
                                                             args.round_timeout)
        evals.close()
        clients.remove(evals)
        time.sleep(2.0)
        out["rss_closed_2s_mb"] = worker_rss_mb(node)
        time.sleep(max(0.0, args.after_s - 2.0))
        out["rss_closed_late_mb"] = worker_rss_mb(node)
        admin.close()
    finally:
        for c in clients:
            c.close()
        node.stop()
        node.remove_data_dir()
    return out


def change_round(admin: AdminClient, clients: list[ClientProc], seq: int,
                 timeout_s: float) -> list[dict[str, Any]]:
    """Change the marked flag; per client, how many of its streams got it and how late."""
    for c in clients:
        c.send({"cmd": "expect", "seq": seq, "timeout_s": timeout_s})
    t0 = time.monotonic_ns()
    admin.patch_flag(ENV_KEY, FLAG_KEY, {"variations": marked_flag(seq, t0)["variations"]})
    out = []
    for c in clients:
        r = c.wait("round", timeout_s + 10)
        lat = sorted(r["lat_ns"])
        out.append({"received": len(lat), "expected": r["expected"],
                    "max_ms": round(lat[-1] / 1e6, 1) if lat else None})
    return out


def baseline_checkout(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def layouts(n_flags: int, n_groups: int = 200) -> str:
    """Per-group cost of four ways to cache evaluated entries (pure, in this process)."""
    state = EnvState()
    state.apply([ItemChange("flags", f"filler-{i}", 1, orjson.dumps(
        filler_flag(i) | {"key": f"filler-{i}", "version": 1})) for i in range(n_flags)])
    model = EvalModel()
    model.sync(state.view())
    groups: ClientGroups[int] = ClientGroups(model)
    contexts = [parse_context({"kind": "user", "key": f"user-{i}", "group": i % 10})
                for i in range(n_groups)]

    def entries(ctx: Context, intern: Callable[[bytes], bytes] | None = None
                ) -> dict[str, bytes]:
        return evaluate_entries(model, ctx, mobile=False, with_reasons=False, intern=intern)

    def joined(ctx: Context) -> tuple[bytes, array.array[int]]:
        e = entries(ctx)
        offsets = array.array("I")  # (start, end) of each entry in the joined payload
        pos = 1
        for key, entry in e.items():
            pos += len(key) + 3
            offsets.extend((pos, pos + len(entry)))
            pos += len(entry) + 1
        return bytes(memoryview(payload_json(e))), offsets

    ways: dict[str, Callable[[Context], object]] = {
        "orjson bytes per entry (5cf78e2)": entries,
        "exact-size copy per entry": lambda c: entries(c, lambda b: bytes(memoryview(b))),
        "one joined buffer + offsets per group": joined,
        "interned shared entries (this tree)": lambda c: entries(c, groups.intern),
    }
    lines = [f"one context group of {n_flags} flags, mean of {n_groups} (tracemalloc)"]
    for name, make in ways.items():
        tracemalloc.start()
        kept = [make(c) for c in contexts]
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del kept
        lines.append(f"{name:<40} {size / n_groups / 1024:8.1f} KiB")
    return "\n".join(lines)


def render(args: argparse.Namespace, results: list[dict[str, Any]]) -> str:
    lines = [f"{args.streams} client-side /eval streams with distinct contexts, {args.flags} "
             f"client-side flags (+1 marked), 1 worker, {WATCHERS} /all watchers",
             "run        loaded MB  open MB  per stream KB  closed+2s MB  closed+"
             f"{args.after_s:.0f}s MB  held/failed  connect s  change while connecting: "
             "/all got, max ms; change while open: /all got, max ms; /eval got, max ms"]
    for r in results:
        per = (r["rss_open_mb"] - r["rss_loaded_mb"]) * 1024 / max(1, r["connect"]["held"])
        a, e, d = r["change_all"], r["change_eval"], r["change_all_connecting"]
        lines.append(
            f"{r['label']:<10} {r['rss_loaded_mb']:>9.0f} {r['rss_open_mb']:>8.0f} {per:>14.1f} "
            f"{r['rss_closed_2s_mb']:>13.0f} {r['rss_closed_late_mb']:>14.0f}  "
            f"{r['connect']['held']:>5}/{r['connect']['failed']:<5} "
            f"{r['connect']['wall_s']:>9.1f}  {d['received']}/{d['expected']}, {d['max_ms']}; "
            f"{a['received']}/{a['expected']}, {a['max_ms']}; "
            f"{e['received']}/{e['expected']}, {e['max_ms']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--flags", type=int, default=1000)
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--after-s", type=float, default=25.0,
                   help="the last RSS reading, this long after the streams closed")
    p.add_argument("--connect-timeout", type=float, default=180.0)
    p.add_argument("--during-s", type=float, default=3.0,
                   help="a first change this long after the client-side streams began to "
                        "connect, measured on the /all watchers")
    p.add_argument("--round-timeout", type=float, default=30.0)
    p.add_argument("--baseline-rev", default=None,
                   help="also run the scenario on this revision first (e.g. 5cf78e2)")
    p.add_argument("--node-arg", action="append", default=[],
                   help="passed to serve (repeatable), for both runs")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    p.add_argument("--layouts", action="store_true",
                   help="only the in-process comparison of cache layouts")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.layouts:
        print(layouts(args.flags))
        return 0
    extra = tuple(args.node_arg)
    results = []
    if args.baseline_rev:
        with tempfile.TemporaryDirectory(prefix="flagstream-baseline-") as tmp:
            repo = baseline_checkout(args.baseline_rev, Path(tmp))
            node = Node(workers=1, extra_args=extra, repo=repo,
                        command=[sys.executable, "-m", "node.cli"])
            results.append(scenario(args.baseline_rev, node, args))
    results.append(scenario("this tree", Node(workers=1, extra_args=extra), args))
    print(render(args, results))
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
