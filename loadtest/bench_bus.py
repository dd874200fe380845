"""Benchmark of the bus across two processes over ipc://: latency and repair time.

    python3 -m loadtest.bench_bus [--changes 1000] [--interval-ms 2] [--flags 500]

The parent is the store (a BusPublisher and the snapshot server over an in-memory source); the
child is a worker (a BusSubscriber whose sink timestamps what it gets). CLOCK_MONOTONIC is
shared by both processes, so each change carries its send time and the child measures
publish -> applied latency. To measure repair, the parent loses chosen changes after the
publisher has counted them (as an nng drop would) and records when; the child records when each
snapshot was applied. Two repair paths: a gap (the next change follows 20 ms later) and a lost
last change (only the next heartbeat, 1 s by default, reveals it). Commands travel on the bus.

The subscriber lives in ``streamer``; the child imports it lazily, since ``store`` code must
not depend on ``streamer`` (this script is a tool, not part of the store).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from functools import partial
from typing import Any

import trio

from bus.envelope import Change, EnvChange, EnvironmentInfo, EnvSnapshot, ItemChange, Snapshot
from bus.publisher import BusPublisher
from bus.snapshot_server import serve_snapshots

ENV = EnvironmentInfo("bench", "Bench", "sdk-bench", "mob-bench", "cid-bench")
PAD = b"x" * 300  # about the size of a small flag's JSON


class MemorySource:
    """A SnapshotSource over a dict, numbered like the store."""

    def __init__(self, flags: int) -> None:
        self.seq = 0
        self.items = {f"f{i}": ItemChange("flags", f"f{i}", 1, b"0 " + PAD) for i in range(flags)}
        self.lock = threading.Lock()

    def commit(self, key: str, data: bytes) -> Change:
        with self.lock:
            self.seq += 1
            old = self.items.get(key)
            item = ItemChange("flags", key, 1 if old is None else old.version + 1, data)
            self.items[key] = item
            return Change(self.seq, ENV.key, (item,))

    def snapshot(self, env: str | None) -> Snapshot:
        with self.lock:
            return Snapshot(self.seq, "", (EnvSnapshot(ENV, tuple(self.items.values())),))

    def latest_seq(self) -> int:
        return self.seq


class LossyPublisher(BusPublisher):
    """Loses the next change after counting it, like a drop inside nng (benchmark only)."""

    lose_next = False
    _losing = False

    async def publish(self, msg: Change | EnvChange) -> None:
        # BusPublisher.publish calls _send before its only await: no heartbeat can slip in.
        self._losing, self.lose_next = self.lose_next, False
        try:
            await super().publish(msg)
        finally:
            self._losing = False

    def _send(self, data: bytes) -> bool:
        return True if self._losing else super()._send(data)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def store_side(args: argparse.Namespace) -> dict[str, Any]:
    source = MemorySource(args.flags)
    with tempfile.TemporaryDirectory(prefix="fsbench") as tmp:
        bus, snap = f"ipc://{tmp}/bus.sock", f"ipc://{tmp}/bus.sock.snap"
        publisher = LossyPublisher(bus, epoch="bench", initial_seq=0, heartbeat_interval=1.0)
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.run)
            await nursery.start(partial(serve_snapshots, snap, source, epoch="bench"))
            child = await nursery.start(
                partial(
                    trio.run_process,
                    [sys.executable, "-m", "loadtest.bench_bus", "--child", bus, snap],
                    stdout=-1,  # subprocess.PIPE
                )
            )
            lines = _lines(child.stdout)
            assert await lines.__anext__() == "ready"

            async def send(key: str) -> None:
                await publisher.publish(source.commit(key, b"%d " % time.monotonic_ns() + PAD))

            for i in range(args.changes):  # paced changes: latency
                await send(f"f{i % args.flags}")
                await trio.sleep(args.interval_ms / 1000)
            # (path, lost seq, lost at ns, ns when the next change revealed it or 0)
            drops: list[tuple[str, int, int, int]] = []
            for path, trials in (("gap", args.gap_trials), ("heartbeat", args.hb_trials)):
                for _ in range(trials):
                    publisher.lose_next = True
                    await send("lost")
                    lost_seq, lost_at, revealed_at = source.seq, time.monotonic_ns(), 0
                    if path == "gap":
                        await trio.sleep(0.020)
                        revealed_at = time.monotonic_ns()
                        await send("next")
                    drops.append((path, lost_seq, lost_at, revealed_at))
                    await trio.sleep(1.6 if path == "heartbeat" else 0.3)
            await send("stop")
            result: dict[str, Any] = json.loads(await lines.__anext__())
            nursery.cancel_scope.cancel()
    lat = result["latencies_ms"]
    out: dict[str, Any] = {
        "changes": args.changes,
        "applied_in_order": len(lat),
        "latency_ms": {"p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat)},
        "snapshot_items": args.flags,
    }
    for path in ("gap", "heartbeat"):
        repaired = [
            (min(t for s, t in result["snapshots"] if s >= seq and t >= at), at, revealed)
            for p, seq, at, revealed in drops
            if p == path
        ]
        if not repaired:
            continue
        since_loss = [(done - at) / 1e6 for done, at, _ in repaired]
        out[f"repair_ms_{path}"] = {
            "n": len(repaired), "median": statistics.median(since_loss), "max": max(since_loss),
        }  # fmt: skip
        if path == "gap":
            since_next = [(done - rev) / 1e6 for done, _, rev in repaired]
            out["repair_ms_gap_from_next_change"] = {
                "median": statistics.median(since_next), "max": max(since_next),
            }  # fmt: skip
    out["subscriber"] = result["stats"]
    return out


async def _lines(stream: Any) -> Any:
    buf = b""
    async for chunk in stream:
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line.decode()


class TimingSink:
    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.snapshots: list[tuple[int, int]] = []
        self.stop = trio.Event()

    async def apply_change(self, msg: Change | EnvChange) -> None:
        now = time.monotonic_ns()
        if isinstance(msg, Change) and msg.items[0].data is not None:
            if msg.items[0].key == "stop":
                self.stop.set()
            elif msg.items[0].key.startswith("f"):
                self.latencies_ms.append((now - int(msg.items[0].data.split(b" ", 1)[0])) / 1e6)

    async def apply_snapshot(self, snapshot: Snapshot, *, full: bool) -> None:
        self.snapshots.append((snapshot.seq, time.monotonic_ns()))
        if any(i.key == "stop" for e in snapshot.envs for i in e.items):
            self.stop.set()


async def worker_side(bus: str, snap: str) -> None:
    from bus.subscriber import BusSubscriber  # see the module docstring

    sink = TimingSink()
    sub = BusSubscriber(bus, snap, sink)
    async with trio.open_nursery() as nursery:
        await nursery.start(sub.run)
        await sub.wait_synced()
        while sub.statistics().heartbeats == 0:  # noqa: ASYNC110 (statistics have no event)
            await trio.sleep(0.01)
        print("ready", flush=True)
        await sink.stop.wait()
        stats = sub.statistics()
        nursery.cancel_scope.cancel()
    report = {
        "latencies_ms": sink.latencies_ms,
        "snapshots": sink.snapshots,
        "stats": {k: getattr(stats, k) for k in ("applied", "resyncs", "gaps_detected")},
    }
    print(json.dumps(report), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--interval-ms", type=float, default=2.0)
    parser.add_argument("--flags", type=int, default=500)
    parser.add_argument("--gap-trials", type=int, default=20)
    parser.add_argument("--hb-trials", type=int, default=5)
    parser.add_argument("--child", nargs=2, metavar=("BUS", "SNAP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        trio.run(worker_side, *args.child)
        return
    print(json.dumps(trio.run(store_side, args), indent=2))


if __name__ == "__main__":
    main()
