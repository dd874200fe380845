"""The SLO runner: one command, every scenario, a report with a verdict per target.

    python3 -m loadtest.slo --connections 50000 --workers 3 --changes 10 --out /tmp/slo50k

Theory of operation
-------------------
Scenarios run in this order, each against fresh processes except where noted:

1. ``fanout``: a `flagstream serve` node with W workers (stream listener on 0.0.0.0), N streams
   from C lean client processes spread over 127.0.0.1..A, K marked changes (+ warm-up). Figures:
   streams held, accept rate, server RSS per connection, server CPU per client per change,
   propagation per change and pooled (HdrHistogram: `.hgrm` file, HTML plot).
2. ``stalled`` (same node and streams): K2 changes with padded frames, then S extra streams that
   never read join, K2 more changes; the others' P99 with and without them is compared. After
   the server's stall timeout the stalled sockets are drained to see which the server closed.
3. ``storm`` (same node and streams, which reconnect with the SDKs' backoff): every worker is
   killed at once; the supervisor restarts them; time until every stream has a fresh `put`,
   503s and their `Retry-After` values, peak RSS per worker while it lasts, and whether any
   worker died beyond the ones killed.
3b. ``overload`` (same node and streams, after the storm): more streams than the node can
   hold. A worker's capacity is what its open-file limit leaves for streams
   (`streamer.fastpath.stream_gate.streams_for_open_files`: 19,000 at this machine's 20,000); extra
   client processes, on destination addresses of their own, offer ``--overload`` (10 %) more
   than all workers' capacity together. Figures: streams held against the capacity, the 503s
   and their `Retry-After` values, whether every worker lived through it (same pids), peak
   RSS against the budget, and two changes to every stream held, with their P99.
4. ``floor``: the raw send-loop server (`loadtest.baselines.raw_floor`, W processes) with the
   same N and clients; flagstream's per-change P99 as a ratio to it. With ``storm`` too, the
   floor's processes are killed and started again at once before flagstream's storm, and the
   time until all its streams are back is the storm's floor on this box (a ratio).
5. ``baselines``: at B connections (15k), flagstream with one worker, sse-starlette on uvicorn,
   and Node `http`, each with the same clients; flagstream's P99 as a ratio to each.
6. ``eval``: client-side streams (`loadtest.bench_eval_streams`): a fresh node with W workers,
   ``--eval-connections`` (10k) `/eval` streams over ``--eval-contexts`` (1k) distinct
   contexts, a flag whose value depends on the context, K changes; P99 per change and pooled.

Progress goes to stderr while it runs; the report is printed and written to ``--out``
(``report.txt``, ``report.json``, per scenario ``.hgrm`` and ``.html``).
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from loadtest import bench_eval_streams, procstats
from loadtest.node import serve_command
from loadtest.report import hgrm_text, percentile_svg, rounds_svg, table_lines, write_report
from loadtest.rounds import (
    MAX_PER_CLIENT,
    REPO,
    ClientPool,
    RoundResult,
    destination_addresses,
    histogram,
)
from loadtest.targets import BaselineTarget, FlagstreamTarget, Target
from streamer.fastpath.stream_gate import streams_for_open_files

SLO_MS = 500.0
# The performance targets are defined at this many connections; a smaller run (the
# 2,000-stream smoke test) reports their figures without a verdict.
FULL_SCALE = 50_000
RECONNECT = {"base_s": 1.0, "max_s": 30.0, "jitter": 0.5}  # PROTOCOL.md §1.3


def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def summarise(rounds: list[RoundResult], warmup: int) -> dict[str, Any]:
    measured = rounds[warmup:]
    rows = [r.as_dict(warm=i < warmup) for i, r in enumerate(rounds)]
    mrows = rows[warmup:]
    pooled = histogram([v for r in measured for v in r.lat_us])

    def med(key: str) -> float:
        vals = [r[key] for r in mrows if not math.isnan(r[key])]
        return statistics.median(vals) if vals else math.nan

    return {
        "rounds": rows,
        "median_round": {k: med(f"{k}_ms") for k in ("p50", "p99", "max", "p99_from_ack")},
        "pooled_ms": {"count": pooled.get_total_count(),
                      **{f"p{p}": pooled.get_value_at_percentile(p) / 1000
                         for p in (50, 99, 99.9)},
                      "max": pooled.get_max_value() / 1000},
        "rounds_p99_within_slo": sum(r["p99_ms"] <= SLO_MS for r in mrows),
        "measured_rounds": len(mrows),
        "server_cpu_us_per_client": med("server_cpu_us_per_client"),
        "client_cpu_us_per_event": med("client_cpu_us_per_event"),
        "others_cpu_ms_max": max((r["others_cpu_ms"] for r in mrows), default=math.nan),
        "all_delivered": all(r.received == r.expected for r in measured),
        "_hist": pooled,
    }  # fmt: skip


def run_rounds(pool: ClientPool, target: Target, first_seq: int, count: int,
               args: argparse.Namespace, label: str) -> list[RoundResult]:
    return [r for r, _ in run_paired(pool, target, None, first_seq, count, args, label)]


Paired = tuple[ClientPool, Target]


def run_paired(pool: ClientPool, target: Target, other: Paired | None, first_seq: int,
               count: int, args: argparse.Namespace, label: str
               ) -> list[tuple[RoundResult, RoundResult | None]]:
    """Rounds on `target`; with `other`, each change is followed by the same change on the
    other target (its own clients), so both see the same machine conditions."""
    out: list[tuple[RoundResult, RoundResult | None]] = []
    for seq in range(first_seq, first_seq + count):
        pair: list[RoundResult] = []
        for p, t, name in [(pool, target, label)] + ([(*other, other[1].name)] if other else []):
            t_start = time.monotonic()
            r = p.round(seq, t, timeout_s=args.round_timeout)
            pair.append(r)
            progress(f"{name} change {seq}: {r.received}/{r.expected} p50 {r.pct(50):.0f} "
                     f"p99 {r.pct(99):.0f} max {r.pct(100):.0f} ms, server "
                     f"{r.server_cpu_us_per_client:.1f} µs/client, others "
                     f"{r.others_cpu_ms:.0f} ms")
            pause = args.pace - (time.monotonic() - t_start)
            if pause > 0:
                time.sleep(pause)
        out.append((pair[0], pair[1] if other else None))
    return out


def connect_with_progress(pool: ClientPool, target: Target, n: int, addresses: list[str],
                          args: argparse.Namespace, label: str, rss_base: int | None = None,
                          **kw: Any) -> dict[str, Any]:
    progress(f"{label}: opening {n} streams over {len(addresses)} addresses, "
             f"{len(pool.clients)} client processes")
    base = procstats.sample_pids(target.server_pids())
    t0 = time.monotonic()
    phases = pool.connect(target, n, addresses, concurrency=args.concurrency,
                          timeout_s=args.connect_timeout, **kw)
    wall = time.monotonic() - t0
    after = procstats.sample_pids(target.server_pids())
    held = sum(p["connected"] for p in phases)
    rss0 = base.rss_kb if rss_base is None else rss_base  # before anything was connected
    errors = summed_errors(phases)
    out = {
        "requested": n, "held": held, "failed": sum(p["failed"] for p in phases),
        "errors": errors, "wall_s": wall, "accept_rate_per_s": held / wall,
        "server_rss_before_kb": rss0, "server_rss_after_kb": after.rss_kb,
        "server_rss_per_conn_kb": (after.rss_kb - rss0) / max(1, held),
        "server_cpu_us_per_accept": (after.cpu_ns - base.cpu_ns) / max(1, held) / 1e3,
        "per_process_sockets": [procstats.socket_fds(p) for p in target.worker_pids()],
        "retry_after": [p["retry_after"] for p in phases],
    }  # fmt: skip
    progress(f"{label}: held {held}/{n} in {wall:.1f} s ({out['accept_rate_per_s']:.0f}/s), "
             f"RSS {out['server_rss_per_conn_kb']:.1f} KB/conn, errors {errors or 'none'}")
    return out


def clients_for(n: int, args: argparse.Namespace) -> int:
    return args.clients or max(1, math.ceil(n / MAX_PER_CLIENT))


def addresses_for(n: int, args: argparse.Namespace) -> list[str]:
    return destination_addresses(n, count=args.addresses, minimum=2)


def time_limit(args: argparse.Namespace) -> float:
    return float(900.0 + args.changes * (args.round_timeout + 3))


def scenario_flagstream(args: argparse.Namespace, report: dict[str, Any]) -> None:
    n = args.connections
    limits = ("--worker-memory-budget", str(worker_budget_mib(args)),
              "--max-loop-lag", str(args.max_loop_lag))  # the limits a worker sheds at
    command = args.node_cmd
    if args.worker_open_files:  # a smaller fd budget, so a small run can saturate it too
        n_files = args.worker_open_files
        command = (f"prlimit --nofile={n_files}:{n_files} -- "
                   f"{command or shlex.join(serve_command())}")
    target = FlagstreamTarget(workers=args.workers, stream_host="0.0.0.0",
                              extra_args=(*limits, *(args.node_arg or ())), command=command)
    pool: ClientPool | None = None
    try:
        target.start()
        rss_base = procstats.sample_pids(target.server_pids()).rss_kb
        pool = ClientPool(clients_for(n, args), time_limit_s=time_limit(args),
                          coalesce_ms=args.coalesce_ms)
        stalled = "stalled" in args.scenarios and args.stalled > 0
        floor: tuple[ClientPool, BaselineTarget] | None = None
        floor_connect: dict[str, Any] = {}
        rounds: list[RoundResult] = []
        with_stalled: dict[str, Any] = {}
        checks: list[dict[str, Any]] = []
        t_fill = stall_fill(pool, target, args) if stalled else 0.0
        fan: dict[str, Any] = {"connect": connect_with_progress(
            pool, target, n, addresses_for(n, args), args, "fanout", reconnect=RECONNECT,
            rss_base=rss_base)}
        report["fanout"] = fan
        if "floor" in args.scenarios:  # held alongside, measured change by change in turn
            floor_target = BaselineTarget("floor", procs=args.workers)
            floor_target.start()
            floor = (ClientPool(clients_for(n, args), time_limit_s=time_limit(args),
                          coalesce_ms=args.coalesce_ms),
                     floor_target)
            floor_connect = connect_with_progress(floor[0], floor_target, n,
                                                  addresses_for(n, args), args, "floor",
                                                  reconnect=RECONNECT)  # for its storm
        time.sleep(1.0)
        seq = 1
        count = args.warmup + args.changes
        if stalled:  # first with the stalled streams, then again once the server dropped them
            rounds = run_rounds(pool, target, seq, count, args, "fanout/with-stalled")
            seq += count
            with_stalled = summarise(rounds, args.warmup)
            wait = t_fill + args.stall_timeout + 10 - time.monotonic()
            progress(f"stalled: waiting {max(0.0, wait):.0f} s for the server's stall timeout")
            time.sleep(max(0.0, wait))
            checks = pool.ask({"cmd": "check_stalled", "timeout_s": 30}, "stalled", 60)
        # the main figures: without stalled streams, each change paired with the floor's
        pairs = run_paired(pool, target, floor, seq, count, args, "fanout")
        seq += count
        rounds = [a for a, _ in pairs]
        if floor is not None:
            report["floor"] = {"connect": floor_connect, "interleaved": True, **summarise(
                [b for _, b in pairs if b is not None], args.warmup)}
            report["paired_p99_ratios"] = [a.pct(99) / b.pct(99)
                                           for a, b in pairs[args.warmup:] if b]
        fan.update(summarise(rounds, args.warmup))
        if stalled:
            report["stalled"] = stall_figures(args, with_stalled, fan, checks,
                                              scrape_metrics(target))
        if floor is not None:
            if "storm" in args.scenarios:  # the same storm against the floor's processes
                report["storm_floor"] = storm_recovery(
                    floor[0], floor[1].crash_restart, floor[1].server_pids, args, "storm/floor")
            floor[0].close()
            floor[1].stop()
            floor = None
        if "storm" in args.scenarios:
            seq = scenario_storm(pool, target, seq, args, report)
        if "overload" in args.scenarios:
            scenario_overload(pool, target, seq, args, report)
    finally:
        if floor is not None:
            floor[0].close()
            floor[1].stop()
        if pool is not None:
            pool.close()
        report["fanout_node"] = target.stop(keep_logs=args.keep_logs)


def stall_fill(pool: ClientPool, target: FlagstreamTarget, args: argparse.Namespace) -> float:
    """Connect the never-reading streams first and fill their sockets with big frames (only
    they receive those), so the server has them on its slow path before the others connect.
    Loopback send buffers autotune to about 1-4 MB, hence several large changes."""
    phases = pool.connect(target, args.stalled, addresses_for(args.connections, args),
                          timeout_s=30, read=False)
    progress(f"stalled: {sum(p['connected'] for p in phases)} never-reading streams connected;"
             f" filling them with {args.stall_fills} x {args.stall_pad // 1024} KB changes")
    t_first = time.monotonic()
    target.pad_bytes = args.stall_pad
    for i in range(args.stall_fills):
        target.publish(-1 - i, time.monotonic_ns())  # negative seq: never counted as a round
        time.sleep(0.2)
    target.pad_bytes = 0
    target.publish(0, time.monotonic_ns())  # small again before the others get their put
    return t_first


def worker_budget_mib(args: argparse.Namespace) -> int:
    """The node's --worker-memory-budget for this run: a worker's own base plus the issue's
    budget per connection for its share of the streams."""
    share: int = math.ceil(int(args.connections) / int(args.workers))
    base, per_conn = float(args.worker_base_mib), float(args.budget_kb_per_conn)
    return math.ceil(base + share * per_conn / 1024)


def scrape_metrics(target: FlagstreamTarget, needles: tuple[str, ...] = ("slow",)) -> list[str]:
    """Sample lines of the node's /metrics that contain one of ``needles`` (one scrape)."""
    assert target.node.listeners is not None
    host, port = target.node.listeners.sdk
    try:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        conn.close()
    except OSError as exc:
        return [f"/metrics: {exc!r}"]
    if resp.status != 200:
        return [f"/metrics answered {resp.status}"]
    return [line for line in body.splitlines()
            if not line.startswith("#") and any(n in line for n in needles)]


def stall_figures(args: argparse.Namespace, with_stalled: dict[str, Any], clean: dict[str, Any],
                  checks: list[dict[str, Any]], metrics: list[str]) -> dict[str, Any]:
    w, c = with_stalled, clean
    return {
        "stalled": args.stalled, "fill": f"{args.stall_fills} x {args.stall_pad} B",
        "p99_with_ms": w["median_round"]["p99"], "p99_without_ms": c["median_round"]["p99"],
        "pooled_p99_with_ms": w["pooled_ms"]["p99"],
        "pooled_p99_without_ms": c["pooled_ms"]["p99"],
        "p99_increase": w["median_round"]["p99"] / c["median_round"]["p99"] - 1,
        "others_cpu_ms_max_with": w["others_cpu_ms_max"],
        "others_cpu_ms_max_without": c["others_cpu_ms_max"],
        "closed_by_server": sum(x["closed_by_server"] for x in checks),
        "still_open": sum(x["still_open"] for x in checks),
        "drained_bytes": sum(x["drained_bytes"] for x in checks),
        "metrics_slow_lines": metrics[:10],
        "others_delivered": w["all_delivered"] and c["all_delivered"],
    }  # fmt: skip


def storm_recovery(pool: ClientPool, kill: Callable[[], list[int]],
                   sample_pids: Callable[[], list[int]], args: argparse.Namespace,
                   label: str) -> dict[str, Any]:
    """Kill the server's processes (`kill` returns their pids) while `pool` holds its streams,
    and time each stream's way back to a fresh `put`; peak RSS of `sample_pids` meanwhile."""
    shares = [s["live"] for s in pool.ask({"cmd": "stats"}, "stats", 10)]
    live = sum(shares)
    t_kill = time.monotonic_ns()
    pool.ask({"cmd": "storm_mark", "t_ns": t_kill}, "storm_marked", 10)
    progress(f"{label}: killing the server's processes holding {live} streams")
    killed = kill()
    for c, n in zip(pool.clients, shares, strict=True):  # each waits for all it held
        c.send({"cmd": "await_live", "n": n, "timeout_s": args.storm_timeout})
    peak: dict[int, int] = {}
    answers = []
    deadline = time.monotonic() + args.storm_timeout + 15
    pending = list(pool.clients)
    while pending and time.monotonic() < deadline:
        for pid in sample_pids():
            peak[pid] = max(peak.get(pid, 0), procstats.sample_pids([pid]).rss_kb)
        still = []
        for c in pending:
            try:
                answers.append(c.wait("live", 0.25))
            except TimeoutError:
                still.append(c)
        pending = still
    rec_ms = sorted(v / 1e6 for a in answers for v in a["recovered_ns"])
    errors = summed_errors(answers)
    out = {
        "workers_killed": len(killed), "streams_before": live, "recovered": len(rec_ms),
        "all_back": len(answers) == len(pool.clients) and all(a["reached"] for a in answers),
        "recover_p50_ms": _pct(rec_ms, 50), "recover_p99_ms": _pct(rec_ms, 99),
        "recover_max_ms": rec_ms[-1] if rec_ms else math.nan,
        "within_15s": sum(v <= 15_000 for v in rec_ms),
        "reconnect_attempts": sum(a["reconnects"] for a in answers),
        "errors": errors, "retry_after": [a["retry_after"] for a in answers],
        "peak_worker_rss_mb": sorted(v / 1024 for v in peak.values()),
        "worker_pids_seen": sorted(peak),
    }  # fmt: skip
    progress(f"{label}: {len(rec_ms)}/{live} back, p99 {out['recover_p99_ms']:.0f} ms,"
             f" max {out['recover_max_ms']:.0f} ms, errors {errors}")
    return out


def scenario_storm(pool: ClientPool, target: FlagstreamTarget, seq: int,
                   args: argparse.Namespace, report: dict[str, Any]) -> int:
    """The storm, then two changes from `seq` on; returns the next change's seq."""
    target.refresh_workers()
    workers = target.worker_pids()

    def kill() -> list[int]:
        for pid in workers:  # our own node's workers, by pid
            os.kill(pid, signal.SIGKILL)
        return workers

    report["storm"] = storm_recovery(pool, kill, target.find_workers, args, "storm") | {
        "worker_memory_budget_mb": worker_budget_mib(args),
        "saturation_metrics": scrape_metrics(target, ("saturat", "loop_lag")),
    }
    seen = report["storm"].pop("worker_pids_seen")
    report["storm"]["workers_died"] = max(0, len(set(seen) - set(workers)) - len(workers))
    target.refresh_workers()
    after = run_rounds(pool, target, seq, 2, args, "storm/after")
    report["storm"]["delivered_after"] = all(r.received == r.expected for r in after)
    return seq + len(after)


def scenario_overload(pool: ClientPool, target: FlagstreamTarget, seq: int,
                      args: argparse.Namespace, report: dict[str, Any]) -> None:
    target.refresh_workers()
    workers = sorted(target.worker_pids())
    held = sum(s["live"] for s in pool.ask({"cmd": "stats"}, "stats", 10))
    caps = [streams_for_open_files(procstats.open_file_limit(w) or -1) for w in workers]
    if None in caps:
        report["overload"] = {"skipped": "a worker has no open-file limit to saturate"}
        return
    capacity = sum(c for c in caps if c is not None)
    extra = max(0, math.ceil(capacity * (1 + args.overload)) - held)
    # destinations of their own: the held streams' are already at their fill
    addrs = destination_addresses(extra, count=args.addresses, minimum=2, subnet="127.0.1")
    over = ClientPool(clients_for(extra, args), time_limit_s=time_limit(args),
                      coalesce_ms=args.coalesce_ms)
    try:
        progress(f"overload: {held} held, capacity {capacity} ({caps}); offering {extra} more")
        conn = connect_with_progress(over, target, extra, addrs, args, "overload")
        rounds = run_rounds(ClientPool.joined(pool, over), target, seq, 2, args, "overload")
        alive = sorted(target.find_workers())
        out = {
            "held_before": held, "capacity": capacity, "per_worker_capacity": caps,
            "offered": extra, "admitted": conn["held"], "held": held + conn["held"],
            "refused_503": conn["errors"].get("http_503", 0), "errors": conn["errors"],
            "retry_after": conn["retry_after"],
            "workers_before": workers, "workers_after": alive,
            "workers_survived": alive == workers,
            "per_worker_sockets": [procstats.socket_fds(w) for w in alive],
            "worker_rss_mb": [procstats.sample_pids([w]).rss_kb / 1024 for w in alive],
            "worker_memory_budget_mb": worker_budget_mib(args),
            "changes": [r.as_dict(warm=False) for r in rounds],
            # every stream held when the overload ended, not only those still there later
            "all_delivered": all(r.received == r.expected == held + conn["held"]
                                 for r in rounds),
            "saturation_metrics": scrape_metrics(target, ("refused", "saturat")),
        }  # fmt: skip
        report["overload"] = out
        progress(f"overload: {out['held']} held of capacity {capacity}, "
                 f"{out['refused_503']} refused with 503, workers survived "
                 f"{out['workers_survived']}, changes delivered {out['all_delivered']}")
    finally:
        over.close()


def summed_errors(answers: list[dict[str, Any]]) -> dict[str, int]:
    """The clients' error counts (each answer's ``errors``), added up by kind."""
    errors: dict[str, int] = {}
    for a in answers:
        for k, v in a["errors"].items():
            errors[k] = errors.get(k, 0) + v
    return errors


def _pct(sorted_vals: list[float], p: float) -> float:
    if not sorted_vals:
        return math.nan
    idx = min(len(sorted_vals) - 1, max(0, math.ceil(p / 100 * len(sorted_vals)) - 1))
    return sorted_vals[idx]


def scenario_baseline(target: Target, n: int, args: argparse.Namespace, changes: int
                      ) -> dict[str, Any]:
    pool: ClientPool | None = None
    try:
        target.start()
        pool = ClientPool(clients_for(n, args), time_limit_s=time_limit(args),
                          coalesce_ms=args.coalesce_ms)
        conn = connect_with_progress(pool, target, n, addresses_for(n, args), args, target.name)
        time.sleep(1.0)
        rounds = run_rounds(pool, target, 1, args.warmup + changes, args, target.name)
        return {"connect": conn, **summarise(rounds, args.warmup)}
    finally:
        if pool is not None:
            pool.close()
        target.stop()


def scenario_locust(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Locust itself at N: `--processes C` workers, one LeanStreamUser of N/C streams each, the
    flag writer every `--pace` s; figures from the master's merged histograms (`--fs-json`)."""
    n, procs = args.connections, clients_for(args.connections, args)
    target = FlagstreamTarget(workers=args.workers, stream_host="0.0.0.0")
    out = args.out / "locust.json"
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        target.start()
        assert target.node.listeners is not None
        ls = target.node.listeners
        # connects at >= 700/s even on a slow box, then at least 2 x the changes' pacing with
        # every stream held (the writer changes the flag every --pace s all along)
        run_s = int(n / 700) + 15 + int(2 * args.changes * args.pace)
        argv = [
            sys.executable, "-m", "locust", "-f", "loadtest/locustfile.py", "--headless",
            "--processes", str(procs), "-u", str(procs + 1), "-r", str(procs + 1),
            "-t", f"{run_s}s", "--only-summary", "--stop-timeout", "5",
            "--fs-admin", f"http://127.0.0.1:{ls.admin[1]}",
            "--fs-admin-token", target.node.admin_token, "--fs-env", "bench",
            "--fs-stream", f"http://127.0.0.1:{ls.stream[1]}",
            "--fs-sdk", f"http://127.0.0.1:{ls.sdk[1]}",
            "--fs-addresses", ",".join(addresses_for(n, args)),
            "--fs-lean-streams", str(math.ceil(n / procs)), "--fs-change-interval",
            str(args.pace), "--fs-json", str(out), "--fs-hgrm", str(args.out / "locust.hgrm"),
            "LeanStreamUser", "FlagWriterUser",
        ]  # fmt: skip
        progress(f"locust: {procs} workers x {math.ceil(n / procs)} streams for {run_s} s")
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        cpu_max = 0
        steady: list[tuple[float, int]] = []  # (time, Locust CPU) once every stream is held
        deadline = time.monotonic() + run_s + 60
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(1.0)  # schedstat of the whole locust tree (threads and forks included)
            cpu = procstats.sample_tree(proc.pid).cpu_ns
            cpu_max = max(cpu_max, cpu)
            held = sum(len(os.listdir(f"/proc/{p}/fd")) for p in target.find_workers())
            if held >= n and (not steady or cpu >= steady[-1][1]):
                steady.append((time.monotonic(), cpu))
        if proc.poll() is None:
            proc.kill()
        log = proc.communicate(timeout=30)[0].decode(errors="replace")
        rows = orjson.loads(out.read_bytes())["changes"] if out.exists() else []
        total = math.ceil(n / procs) * procs
        full = [r for r in rows if r["count"] == total]
        deliveries = sum(r["count"] for r in rows)
        report["locust"] = {
            "streams": total, "changes_seen": len(rows), "changes_to_all": len(full),
            "p99_per_change_ms": [round(r["p99_ms"], 1) for r in full],
            "median_change_p99_ms": statistics.median(r["p99_ms"] for r in full) if full
            else math.nan,
            "locust_cpu_s": cpu_max / 1e9, "deliveries": deliveries,
            "locust_cpu_us_per_event_whole_run": cpu_max / 1e3 / max(1, deliveries),
            # all N held: CPU over the window / (N streams x changes in it), idle time included
            "locust_cpu_us_per_event_steady": (
                (steady[-1][1] - steady[0][1]) / 1e3
                / max(1.0, n * (steady[-1][0] - steady[0][0]) / args.pace)
                if len(steady) > 3 else math.nan),
            "exit_code": proc.returncode, "log_tail": log[-1500:],
        }  # fmt: skip
        progress(f"locust: {len(full)} changes reached all {total} streams; median P99 "
                 f"{report['locust']['median_change_p99_ms']:.0f} ms")
    finally:
        target.stop()


def verdicts(report: dict[str, Any], args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) rows for the issue's targets that were run. The verdict is
    met / NOT MET, or for a target defined at 50,000 connections in a smaller run, that it
    was not judged."""
    rows: list[tuple[str, str, str]] = []
    small = args.connections < FULL_SCALE

    def row(name: str, measured: str, ok: bool, *, at_scale: bool = False) -> None:
        if at_scale and small:
            rows.append((name, measured, f"applies at {FULL_SCALE:,} connections; not judged "
                                         f"at {args.connections:,}"))
        else:
            rows.append((name, measured, "met" if ok else "NOT MET"))

    fan = report.get("fanout")
    if fan:
        c = fan["connect"]
        row(f"{args.connections} connections held", f"{c['held']}", c["held"] >= args.connections)
        row("server RSS <= 10 KB/conn", f"{c['server_rss_per_conn_kb']:.1f} KB",
            c["server_rss_per_conn_kb"] <= 10, at_scale=True)
        row("pooled P99 <= 500 ms", f"{fan['pooled_ms']['p99']:.0f} ms",
            fan["pooled_ms"]["p99"] <= SLO_MS, at_scale=True)
        k, m = fan["rounds_p99_within_slo"], fan["measured_rounds"]
        row("per-change P99 <= 500 ms in >= 80 % of changes", f"{k}/{m}", k >= 0.8 * m,
            at_scale=True)
        row("server CPU <= 11 µs/client/change", f"{fan['server_cpu_us_per_client']:.1f} µs",
            fan["server_cpu_us_per_client"] <= 11, at_scale=True)
        row("every stream got every change", str(fan["all_delivered"]), fan["all_delivered"])
    floor = report.get("floor")
    if fan and floor:
        paired = report.get("paired_p99_ratios")
        ratio = (statistics.median(paired) if paired
                 else fan["median_round"]["p99"] / floor["median_round"]["p99"])
        report["ratio_to_floor"] = ratio
        how = (f"median of {len(paired)} paired changes, range {min(paired):.2f}-"
               f"{max(paired):.2f}" if paired else "ratio of median changes")
        row("fan-out P99 / floor P99 <= 1.15", f"{ratio:.2f} ({how})", ratio <= 1.15)
    st = report.get("stalled")
    if st:
        row(f"{st['stalled']} stalled: others' P99 +<= 10 %", f"{st['p99_increase'] * 100:+.1f} %"
            f" ({st['p99_without_ms']:.0f} -> {st['p99_with_ms']:.0f} ms)",
            st["p99_increase"] <= 0.10, at_scale=True)
        row("stalled streams disconnected by the server",
            f"{st['closed_by_server']} closed, {st['still_open']} open",
            st["closed_by_server"] == st["stalled"])
    sm = report.get("storm")
    if sm:
        row("storm: every client has a fresh put within 15 s",
            f"{sm['within_15s']}/{sm['streams_before']} (max {sm['recover_max_ms'] / 1000:.1f} s)",
            sm["within_15s"] >= sm["streams_before"], at_scale=True)
        peak = max(sm["peak_worker_rss_mb"], default=math.nan)
        row("storm: no worker over its memory budget",
            f"peak {peak:.0f} MB of {sm['worker_memory_budget_mb']} MB",
            peak <= sm["worker_memory_budget_mb"])
        sf = report.get("storm_floor")
        if sf and sf["recovered"]:
            ratio = sm["recover_max_ms"] / sf["recover_max_ms"]
            report["storm_ratio_to_floor"] = ratio
            rows.append(("storm: time until all are back / the floor's", f"{ratio:.2f} ("
                         f"{sm['recover_max_ms'] / 1000:.1f} s / {sf['recover_max_ms'] / 1000:.1f}"
                         " s)", "(ratio)"))
        row("storm: no worker fell over (died beyond the ones killed)",
            f"{sm['workers_died']} died", sm["workers_died"] == 0)
        shed = sm["errors"].get("reconnect_http_503", 0)
        rows.append(("storm: 503s while it lasted", f"{shed} ({ra_text(sm['retry_after'])})",
                     "(figure)"))
    ov = report.get("overload")
    if ov and "skipped" not in ov:
        ra = merge_retry_after(ov["retry_after"])
        jittered = ra["count"] > 0 and ra["distinct"] > 1
        row("overload: saturated node sheds with 503 + jittered Retry-After",
            f"{ov['refused_503']} of {ov['offered']} extra refused ({ra_text([ra])}); held "
            f"{ov['held']} of capacity {ov['capacity']}",
            ov["refused_503"] > 0 and jittered and ov["held"] <= ov["capacity"])
        same = ov["workers_survived"]
        row("overload: no worker fell over", "same workers" if same else "a worker restarted",
            same)
        row("overload: every held stream got every change", str(ov["all_delivered"]),
            ov["all_delivered"])
        peak = max(ov["worker_rss_mb"], default=math.nan)
        row("overload: no worker over its memory budget",
            f"peak {peak:.0f} MB of {ov['worker_memory_budget_mb']} MB",
            peak <= ov["worker_memory_budget_mb"])
    ev = report.get("eval")
    if ev:
        c, pooled = ev["connect"], ev["pooled"]
        row(f"client-side: {ev['connections']} /eval streams, {ev['contexts']} contexts, "
            "P99 recorded",
            f"pooled P99 {pooled['p99_ms']:.0f} ms (max {pooled['max_ms']:.0f}), held "
            f"{c['held']}, median server CPU {ev['median_server_cpu_ms_per_change']:.0f} ms "
            "per change", c["held"] == ev["connections"] and ev["all_delivered"])
    lc = report.get("locust")
    if lc:
        row(f"locust: holds {args.connections} streams, changes that reached all of them",
            f"{lc['changes_to_all']} (median P99 {lc['median_change_p99_ms']:.0f} ms)",
            lc["streams"] >= args.connections and lc["changes_to_all"] > 0)
        cpu = lc["locust_cpu_us_per_event_steady"]
        row("locust: <= 10 µs CPU per received event (steady, idle included)",
            f"{cpu:.1f} µs", cpu <= 10, at_scale=True)
    for name in ("starlette", "node"):
        b = report.get("baselines", {})
        if name in b and "flagstream" in b:
            ratio = b["flagstream"]["median_round"]["p99"] / b[name]["median_round"]["p99"]
            report[f"ratio_to_{name}"] = ratio
            rows.append((f"flagstream P99 / {name} P99 at {args.baseline_connections}",
                         f"{ratio:.2f}", "(ratio)"))
    return rows


def merge_retry_after(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary of several clients' `retry_after_summary` answers (distinct: the most any
    one client saw, a lower bound of the whole)."""
    seen = [p for p in parts if p["count"]]
    return {"count": sum(p["count"] for p in seen),
            "min": min((p["min"] for p in seen), default=None),
            "max": max((p["max"] for p in seen), default=None),
            "distinct": max((p["distinct"] for p in seen), default=0)}


def ra_text(parts: list[dict[str, Any]]) -> str:
    ra = merge_retry_after(parts)
    if not ra["count"]:
        return "no Retry-After"
    return (f"Retry-After {ra['min']:.0f}-{ra['max']:.0f} s, {ra['distinct']} values, "
            f"{ra['count']} answers")


def render_fanout(name: str, fan: dict[str, Any]) -> list[str]:
    c = fan["connect"]
    lines = [
        f"== {name}",
        f"held {c['held']}/{c['requested']} in {c['wall_s']:.1f} s = {c['accept_rate_per_s']:.0f}"
        f"/s; server CPU {c['server_cpu_us_per_accept']:.0f} µs/accept; RSS "
        f"{c['server_rss_before_kb'] / 1024:.0f} -> {c['server_rss_after_kb'] / 1024:.0f} MB = "
        f"{c['server_rss_per_conn_kb']:.1f} KB/conn; sockets per process "
        f"{c['per_process_sockets']}; errors {c['errors'] or 'none'}",
        " seq   recv/expected   p50 ms   p99 ms p99.9 ms   max ms | srv µs/cli cli µs/ev"
        "  bench ms others ms",
    ]
    for r in fan["rounds"]:
        lines.append(
            f"{r['seq']:>4}{'w' if r['warmup'] else ' '} {r['received']:>7}/{r['expected']:<7}"
            f"{r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['p99_9_ms']:8.1f} {r['max_ms']:8.1f} |"
            f" {r['server_cpu_us_per_client']:10.1f} {r['client_cpu_us_per_event']:9.2f}"
            f" {r['bench_cpu_ms']:9.0f} {r['others_cpu_ms']:9.0f}")
    p, m = fan["pooled_ms"], fan["median_round"]
    lines += [
        f"median change: p50 {m['p50']:.1f}, p99 {m['p99']:.1f}, max {m['max']:.1f} ms; "
        f"pooled ({p['count']}): p50 {p['p50']:.1f}, p99 {p['p99']:.1f}, "
        f"p99.9 {p['p99.9']:.1f}, max {p['max']:.1f} ms; all delivered {fan['all_delivered']}",
        "",
    ]
    return lines


def render(report: dict[str, Any], rows: list[tuple[str, str, str]]) -> str:
    lines = [f"flagstream SLO run {report['date']} on {report['machine']}",
             f"command: {report['command']}", ""]  # fmt: skip
    if "fanout" in report:
        lines += render_fanout(f"flagstream fan-out, {report['workers']} workers", report["fanout"])
    if "floor" in report:
        how = "interleaved change by change" if report["floor"].get("interleaved") else "after"
        lines += render_fanout(f"floor: raw send loop, same N and clients ({how})",
                               report["floor"])
    for name, fan in report.get("baselines", {}).items():
        lines += render_fanout(f"baseline {name} at {report['baseline_connections']}", fan)
    for key in ("stalled", "storm", "storm_floor", "overload", "locust"):
        if key in report:
            lines += table_lines(key, report[key])
    if "eval" in report:
        lines += ["== client-side /eval streams", bench_eval_streams.render(report["eval"]), ""]
    width = max((len(r[0]) for r in rows), default=10)
    lines.append("== targets")
    lines += [f"{name:<{width}}  {measured:<40}  {verdict}".rstrip()
              for name, measured, verdict in rows]
    return "\n".join(lines)


def _machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    py = sys.version.split()[0]
    return f"{os.cpu_count()} CPU ({model}), Linux {os.uname().release}, Python {py}"


SCENARIOS = ("fanout", "stalled", "storm", "overload", "floor", "baselines", "locust", "eval")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="flagstream SLO runner: every scenario, one report")
    ap.add_argument("--connections", type=int, default=50_000)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--changes", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help=f"comma-separated subset of {','.join(SCENARIOS)}")
    ap.add_argument("--clients", type=int, default=0, help="default: ceil(N / 15000)")
    ap.add_argument("--addresses", type=int, default=0, help="default: rounds.destination_count")
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--connect-timeout", type=float, default=120.0)
    ap.add_argument("--round-timeout", type=float, default=20.0)
    ap.add_argument("--pace", type=float, default=1.0)
    ap.add_argument("--coalesce-ms", type=float, default=2.0,
                    help="lean clients: when < 64 sockets are ready, wait this long for more"
                         " (0: never; measured latency includes the wait)")
    ap.add_argument("--stalled", type=int, default=100)
    ap.add_argument("--stall-fills", type=int, default=8, help="big changes to fill them")
    ap.add_argument("--stall-pad", type=int, default=512 * 1024, help="bytes per fill change")
    ap.add_argument("--stall-timeout", type=float, default=60.0,
                    help="the server's stall timeout (StreamLimits.stall_timeout)")
    ap.add_argument("--storm-timeout", type=float, default=60.0)
    ap.add_argument("--budget-kb-per-conn", type=float, default=10.0,
                    help="the node's --worker-memory-budget allows this much per stream ...")
    ap.add_argument("--worker-base-mib", type=float, default=64.0,
                    help="... on top of this much for the worker itself")
    ap.add_argument("--baseline-connections", type=int, default=15_000)
    ap.add_argument("--baseline-changes", type=int, default=5)
    ap.add_argument("--eval-connections", type=int, default=10_000)
    ap.add_argument("--eval-contexts", type=int, default=1_000)
    ap.add_argument("--keep-logs", action="store_true", help="keep the node's data dir and logs")
    ap.add_argument("--max-loop-lag", type=float, default=0.0,
                    help="the node's --max-loop-lag in the fan-out/stalled/storm scenarios "
                         "(s; 0, the node's default: off): a worker whose loop lags more "
                         "sheds new streams, which the storm then shows")
    ap.add_argument("--overload", type=float, default=0.1,
                    help="the overload scenario offers this much more than the node's capacity")
    ap.add_argument("--worker-open-files", type=int, default=0,
                    help="run the node under prlimit --nofile=N (default: this shell's limit)")
    ap.add_argument("--node-arg", action="append")
    ap.add_argument("--node-cmd")
    ap.add_argument("--out", type=Path, default=Path("slo-report"))
    return ap


def run(args: argparse.Namespace) -> dict[str, Any]:
    args.scenarios = set(args.scenarios.split(","))
    unknown = args.scenarios - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios: {sorted(unknown)}")
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": _machine(),
        "command": " ".join(["python3 -m loadtest.slo", *sys.argv[1:]]),
        "connections": args.connections, "workers": args.workers,
        "baseline_connections": args.baseline_connections,
    }  # fmt: skip
    if args.scenarios & {"fanout", "stalled", "storm", "overload"}:
        scenario_flagstream(args, report)
    if "floor" in args.scenarios and "fanout" not in args.scenarios:
        report["floor"] = scenario_baseline(BaselineTarget("floor", procs=args.workers),
                                            args.connections, args, args.changes)
    if "locust" in args.scenarios:
        scenario_locust(args, report)
    if "eval" in args.scenarios:
        progress(f"eval: {args.eval_connections} /eval streams over {args.eval_contexts} "
                 "contexts")
        report["eval"] = bench_eval_streams.run(argparse.Namespace(
            connections=args.eval_connections, contexts=args.eval_contexts, flags=20,
            workers=args.workers, changes=args.changes, warmup=args.warmup,
            round_timeout=args.round_timeout, pace=args.pace))
        progress(f"eval: pooled P99 {report['eval']['pooled']['p99_ms']:.0f} ms, all "
                 f"delivered {report['eval']['all_delivered']}")
    if "baselines" in args.scenarios:
        b = report["baselines"] = {}
        n = args.baseline_connections
        b["flagstream"] = scenario_baseline(FlagstreamTarget(workers=1, stream_host="0.0.0.0"),
                                            n, args, args.baseline_changes)
        for name in ("starlette", "node"):
            b[name] = scenario_baseline(BaselineTarget(name), n, args, args.baseline_changes)
    return report


def write(report: dict[str, Any], args: argparse.Namespace) -> str:
    rows = verdicts(report, args)
    text = render(report, rows)
    sections = []
    for key, fan in [("fanout", report.get("fanout")), ("floor", report.get("floor")),
                     *report.get("baselines", {}).items()]:
        if fan:
            rows_m = [r for r in fan["rounds"] if not r["warmup"]]
            sections.append((f"{key}: per change", rounds_svg(rows_m, slo_ms=SLO_MS, title=key)))
            sections.append((f"{key}: pooled percentiles",
                             percentile_svg(fan["_hist"], slo_ms=SLO_MS, title=key)))
    fan = report.get("fanout")
    write_report(args.out, "report", text=text, hist=fan["_hist"] if fan else None,
                 sections=sections)
    for key, f in [("floor", report.get("floor")), *report.get("baselines", {}).items()]:
        if f and f["_hist"].get_total_count():
            (args.out / f"{key}.hgrm").write_text(hgrm_text(f["_hist"]))
    clean = orjson.loads(orjson.dumps(report, default=lambda o: None))
    (args.out / "report.json").write_bytes(orjson.dumps(clean, option=orjson.OPT_INDENT_2))
    return text


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = run(args)
    print(write(report, args))
    fan = report.get("fanout")
    return 0 if (fan is None or fan["all_delivered"]) else 1


if __name__ == "__main__":
    sys.exit(main())
