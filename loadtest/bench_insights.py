"""Benchmark: flag insights after millions of events, through the real consumer.

    python3 -m loadtest.bench_insights [--events 5000000] [--flags 200]
                                       [--unknown-share 0.2] [--days 30] [--runs 7]

Writes SDK payloads as a worker's spool would hold them (``ingest.records.encode_records``
framed by ``ingest.spool``; no HTTP) into a fresh data dir, then lets the real insights consumer
(``InsightsConsumer.poll_once``, the store in a worker thread) fold them into a fresh database
until it has caught up, and prints: the database size, the ingest time, the longest single
write of the store (how long the admin routes may wait behind it), the stale-flags query
(``InsightsStore.last_evaluated``) and the per-flag query (``InsightsStore.flag``), each the
median of ``--runs`` runs.

Each payload is what a server-side SDK flushes: one summary event with counters for 20 flags
(1-2 variations each) and 9 other events (feature, index, custom), 10 events in all, a fresh
payload ID each, received over the last ``--days`` days. ``--unknown-share`` of the summarised
flag keys are keys the environment does not have (a stale SDK, or a client inventing keys);
the rest come from the ``--flags`` flags of the environment's catalog.

Only the public API that the code before issue 12 also had is used, so the same file runs
against a worktree of older code (``cp`` it there and run it with ``-m`` from that worktree).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import trio

from ingest import spool
from ingest.records import Payload, PayloadKind, Source, encode_records
from insights.consumer import InsightsConfig, InsightsConsumer, InsightsService
from insights.store import InsightsStore

ENV = "prod"
EVENTS_PER_PAYLOAD = 10
FLAGS_PER_SUMMARY = 20
PAYLOADS_PER_APPEND = 1000
_DAY_MS = 86_400_000


class Catalog:
    """``ingest.ports.FlagCatalog`` with a fixed list of flags (in memory)."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = keys

    def flag_keys(self, env: str) -> list[str] | None:
        return self._keys if env == ENV else None


def payloads(
    count: int, known: list[str], unknown_share: float, days: int, rng: random.Random
) -> Iterator[Payload]:
    now = int(time.time() * 1000)
    for _ in range(count):
        received = now - rng.randrange(days * _DAY_MS)
        features: dict[str, Any] = {}
        for _ in range(FLAGS_PER_SUMMARY):
            if rng.random() < unknown_share:
                key = f"unknown-{rng.getrandbits(48):x}"
            else:
                key = rng.choice(known)
            counters = [{"variation": 0, "version": 3, "value": False, "count": rng.randint(1, 9)}]
            if rng.random() < 0.5:
                counters.append({"variation": 1, "version": 3, "value": True, "count": 2})
            features[key] = {"default": False, "counters": counters}
        user = {"kind": "user", "key": f"user-{rng.getrandbits(32):x}"}
        events: list[dict[str, Any]] = [
            {"kind": "index", "creationDate": received, "context": user}
        ]
        for j in range(EVENTS_PER_PAYLOAD - 3):
            flag = rng.choice(known)
            events.append({"kind": "feature", "creationDate": received - j, "key": flag,
                           "version": 3, "context": user, "variation": 1, "value": True,
                           "default": False})
        events.append({"kind": "custom", "creationDate": received, "key": "checkout",
                       "context": user})
        events.append({"kind": "summary", "startDate": received - 10_000, "endDate": received,
                       "features": features})
        yield Payload(ENV, PayloadKind.ANALYTICS, Source.SERVER, str(uuid.uuid4()), received,
                      tuple(events))


def write_spool(data_dir: Path, items: Iterator[Payload]) -> int:
    """Frames every payload's records into ``DATA_DIR/spool/worker-0``; returns the records."""
    writer = spool.SpoolWriter(data_dir / "spool" / "worker-0")
    writer.open()
    records = 0
    frames: list[bytes] = []
    for n, payload in enumerate(items, 1):
        for record in encode_records(payload):
            frames.append(spool.encode_frame(record))
            records += 1
        if n % PAYLOADS_PER_APPEND == 0:
            writer.append(b"".join(frames))
            frames.clear()
    if frames:
        writer.append(b"".join(frames))
    writer.close()
    return records


def timed(fn: Callable[..., Any], samples: list[float]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            samples.append(time.perf_counter() - t0)

    return call


async def consume(config: InsightsConfig, service: InsightsService) -> int:
    consumer = InsightsConsumer(config, service)
    total = 0
    for _ in range(10_000_000):
        folded = await consumer.poll_once()
        total += folded
        if folded == 0:
            return total
    raise RuntimeError("the consumer never caught up")


def median_ms(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    samples, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m loadtest.bench_insights")
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--flags", type=int, default=200)
    parser.add_argument("--unknown-share", type=float, default=0.2)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--data-dir", type=Path, help="default: a temporary directory")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-insights-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        run(data_dir, args)


def run(data_dir: Path, args: argparse.Namespace) -> None:
    import ingest

    rng = random.Random(args.seed)
    known = [f"flag-{i:04d}" for i in range(args.flags)]
    count = args.events // EVENTS_PER_PAYLOAD
    t0 = time.perf_counter()
    records = write_spool(data_dir, payloads(count, known, args.unknown_share, args.days, rng))
    print(f"code: {Path(ingest.__file__).parent.parent}")
    print(f"spool: {count * EVENTS_PER_PAYLOAD:,} events in {count:,} payloads, {records:,} "
          f"records, written in {time.perf_counter() - t0:.1f} s")
    config = InsightsConfig(data_dir)
    store = InsightsStore(config.db_path)
    writes: list[float] = []
    store.apply = timed(store.apply, writes)  # type: ignore[method-assign]
    service = InsightsService(store, Catalog(known))
    t0 = time.perf_counter()
    folded = trio.run(consume, config, service)
    ingest_s = time.perf_counter() - t0
    writes.sort()
    print(f"ingest: {folded:,} records in {ingest_s:.1f} s "
          f"({count * EVENTS_PER_PAYLOAD / ingest_s:,.0f} events/s); {len(writes):,} store "
          f"writes, p50 {writes[len(writes) // 2] * 1000:.1f} ms, "
          f"max {writes[-1] * 1000:.1f} ms")
    stale_ms, last = median_ms(lambda: store.last_evaluated(ENV), args.runs)
    print(f"stale-flags query: median {stale_ms:.2f} ms over {args.runs} runs "
          f"({len(last):,} flags answered)")
    flag_ms, found = median_ms(lambda: store.flag(ENV, known[0]), args.runs)
    total = 0 if found is None else found.total
    print(f"per-flag query: median {flag_ms:.2f} ms over {args.runs} runs "
          f"({total:,} evaluations of {known[0]})")
    store.close()
    size = sum(p.stat().st_size for p in data_dir.glob("insights.sqlite3*"))
    print(f"database: {size / 1e6:.1f} MB (insights.sqlite3 with its WAL)")


if __name__ == "__main__":
    main()
