"""Measure the write coalescer: publishes per write for a burst of concurrent PATCHes.

``python3 -m store.bench_coalesce [--writes 1000] [--window-ms 5] [--format merge]`` runs the
real writer actor on a real SQLite file in a temporary directory, fires ``--writes`` concurrent
PATCHes at one flag, and prints how many changes were committed and published. ``--format``
sends each PATCH as a merge patch (the default), a JSON Patch or a semantic patch, all with
the same effect (set ``offVariation``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from bus.envelope import Change, EnvChange
from store.db import FlagDB
from store.patch_format import PatchFormat, parse_patch
from store.writer import Writer

FLAG = {"variations": [0, 1], "on": True, "fallthrough": {"variation": 0}}


class CountingPublisher:
    def __init__(self) -> None:
        self.count = 0

    async def publish(self, msg: Change | EnvChange) -> None:
        self.count += 1


def patch_body(fmt: PatchFormat, variation: int) -> Any:
    if fmt is PatchFormat.JSON_PATCH:
        return [{"op": "replace", "path": "/offVariation", "value": variation}]
    if fmt is PatchFormat.SEMANTIC:
        return {"instructions": [{"kind": "updateOffVariation", "variationId": variation}]}
    return {"offVariation": variation}


async def burst(data_dir: Path, writes: int, window_s: float,
                fmt: PatchFormat = PatchFormat.MERGE) -> str:
    db = FlagDB(data_dir)
    db.create_environment("prod", "Production")
    pub = CountingPublisher()
    writer = Writer(db, pub, window_s=window_s)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.put("prod", "flags", "f", {**FLAG, "offVariation": 0})
        patches = [parse_patch(fmt, patch_body(fmt, i % 2)) for i in range(writes)]
        before = writer.statistics()
        started = time.perf_counter()
        async with trio.open_nursery() as burst_nursery:
            for i in range(writes):
                burst_nursery.start_soon(
                    writer.patch, "prod", "flags", "f", patches[i]
                )
        elapsed = time.perf_counter() - started
        after = writer.statistics()
        nursery.cancel_scope.cancel()
    stored = db.get_item("prod", "flags", "f")
    db.close()
    publishes = after.publishes - before.publishes
    commits = after.commits - before.commits
    return (
        f"{writes} concurrent {fmt.value} PATCHes to one flag, window {window_s * 1000:g} ms: "
        f"{publishes} publishes, {commits} commits, {publishes / writes:.4f} publishes/write, "
        f"final version {stored.version if stored else None}, {elapsed * 1000:.1f} ms for the burst"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--window-ms", type=float, default=5.0)
    parser.add_argument("--format", choices=[f.value for f in PatchFormat], default="merge")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(trio.run(burst, Path(tmp), args.writes, args.window_ms / 1000,
                       PatchFormat(args.format)))


if __name__ == "__main__":
    main()
