"""The insights consumer: reads the events log and folds it into the insights store.

Sources:
- Kinesis (``kinesis_stream`` set): every shard, from its checkpointed sequence number (or
  ``TRIM_HORIZON``; ``AT_TIMESTAMP`` for a replay), polled every ``poll_interval_s``. Closed
  shards (after resharding) are read to their end; new shards are picked up on the next listing.
- The spool (no Kinesis): every ``DATA_DIR/spool/worker-*`` directory, from its checkpointed
  position. In this mode the spool is the log; its retention budget bounds how far back a
  replay can go.

Each batch's counts and its checkpoint are committed together (``InsightsStore.apply``), after
the contributions for flags the environment does not have were dropped and counted
(``insights.known``; logged once per episode: from the first batch with such keys to the
next batch without). Beside the polling loop, a pruning task forgets the de-duplication rows
older than ``seen_retention_s`` (``InsightsStore.prune_seen``) every ``prune_interval_s``, in
chunks of ``PRUNE_CHUNK`` rows so that reads and writes interleave with it.

Why ``SEEN_RETENTION_S`` is 7 days: a row only has to outlive the moment a copy of its record
can still arrive. Copies come from an SDK's retry (one, a second later), from the ingest
actor re-putting records whose ``PutRecords`` timed out (after a Kinesis outage, from its
spool, as late as the outage lasted) and from re-reading a shard after a restart (the
checkpoint is committed with the counts, so nothing counted is re-read). Seven days is
Kinesis's longest extended retention and far beyond any retry. A replay does not depend on it:
``reset_since`` forgets the days it rebuilds, and ``count_from_day`` keeps a replay from
counting the days before them again.

A failure of the store (disk full, I/O error), or any other unexpected exception, ends the pass,
not the process: it is counted, logged once per episode, and the pass is retried after
``poll_interval_s``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

from ingest import spool
from ingest.errors import IngestError
from ingest.ports import FlagCatalog
from ingest.records import decode_record
from insights.fold import Contribution, fold_record
from insights.known import SAMPLE_KEYS, KnownFlags, Split
from insights.store import InsightsStore

log = logging.getLogger("flagstream.insights")

SEEN_RETENTION_S = 7 * 86_400.0  # see the module docstring
PRUNE_INTERVAL_S = 3600.0
PRUNE_CHUNK = 10_000  # rows per pruning transaction
PRUNE_MAX_CHUNKS = 1000  # per pass; what is left waits for the next pass
MAX_ENV_LABELS = 1000  # environments counted by name; the rest under OTHER_ENVS
OTHER_ENVS = "_other"

# ``trio.to_thread.run_sync``'s shape: (fn, *args, limiter=...) -> fn's result.
RunSync = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class InsightsConfig:
    data_dir: Path
    kinesis_stream: str | None = None
    kinesis_endpoint: str | None = None
    poll_interval_s: float = 1.0
    replay_from_ms: int | None = None  # Kinesis: start every shard AT_TIMESTAMP this time
    count_from_day: str | None = None  # a replay counts only days from this one (YYYY-MM-DD)
    seen_retention_s: float = SEEN_RETENTION_S
    prune_interval_s: float = PRUNE_INTERVAL_S

    @property
    def db_path(self) -> Path:
        return self.data_dir / "insights.sqlite3"


@dataclass(frozen=True, slots=True)
class InsightsStatistics:
    """What the store's ``/metrics`` reads (``insights.metrics``)."""

    units_counted: int
    unknown_flags: tuple[tuple[str, int], ...]  # (env, contributions dropped), by env
    seen_pruned: int
    failures: int


class InsightsService:
    """What the admin routes hold: the store (read side) and, optionally, the flag catalog.

    Without a catalog every flag key is counted: only for tools and tests that have no flag
    store; the store process and the CLI always give one."""

    def __init__(self, store: InsightsStore, catalog: FlagCatalog | None = None) -> None:
        self.store = store
        self.catalog = catalog
        self.known = None if catalog is None else KnownFlags(catalog)
        self.limiter = trio.CapacityLimiter(1)
        self.caught_up = trio.Event()  # set once the source had nothing more to read
        self.units_counted = 0
        self.records_applied = 0  # records folded and written, duplicates included
        self.unknown_flags: dict[str, int] = {}  # at most MAX_ENV_LABELS + 1 entries
        self.seen_pruned = 0
        self.failures = 0

    def statistics(self) -> InsightsStatistics:
        return InsightsStatistics(
            self.units_counted,
            tuple(sorted(self.unknown_flags.items())),
            self.seen_pruned,
            self.failures,
        )

    def count_unknown(self, split: Split) -> None:
        for env, n in split.unknown.items():
            if env not in self.unknown_flags and len(self.unknown_flags) >= MAX_ENV_LABELS:
                env = OTHER_ENVS
            self.unknown_flags[env] = self.unknown_flags.get(env, 0) + n


class InsightsConsumer:
    def __init__(
        self,
        config: InsightsConfig,
        service: InsightsService,
        *,
        wall_clock: Callable[[], float] = time.time,
        run_sync: RunSync = trio.to_thread.run_sync,
    ) -> None:
        self.config = config
        self.service = service
        self._wall_clock = wall_clock  # dates the de-duplication rows (pruned by age)
        # Blocking calls go to a worker thread; a mock-clock test runs them inline, since a
        # thread lets the clock jump ahead while it works.
        self._run_sync = run_sync
        self._unknown_episode = False
        self._failing = False
        self._iterators: dict[str, str | None] = {}
        self._kinesis = None
        if config.kinesis_stream is not None:
            from ingest.kinesis import KinesisClient

            self._kinesis = KinesisClient(
                config.kinesis_stream, endpoint_url=config.kinesis_endpoint
            )

    async def _apply(
        self, records: list[list[dict[str, Any]]], source: str, position: str
    ) -> None:
        """Fold, drop unknown flags and count one batch of records (each its enriched lines).
        Only the write holds the store's limiter: the admin routes wait for nothing else."""
        kept, split = await self._run_sync(self._fold, records, trio.current_time())
        now_ms = int(self._wall_clock() * 1000)
        self.service.units_counted += await self._run_sync(
            self.service.store.apply, kept, source, position, now_ms, limiter=self.service.limiter
        )
        self.service.records_applied += len(records)
        if split is None:
            return
        self.service.count_unknown(split)
        if split.unknown and not self._unknown_episode:
            log.warning(
                "insights: dropped %d evaluations of flags their environment does not have "
                "(e.g. %s); counted in flagstream_insights_unknown_flags_total, logged again "
                "after a batch without any",
                sum(split.unknown.values()),
                ", ".join(split.sample),
            )
        self._unknown_episode = bool(split.unknown)

    def _fold(
        self, records: list[list[dict[str, Any]]], now: float
    ) -> tuple[list[list[Contribution]], Split | None]:
        """In a worker thread (one at a time: the consumer awaits it): each record's
        contributions for known flags, and what was dropped (None without a catalog)."""
        known = self.service.known
        since = self.config.count_from_day
        kept: list[list[Contribution]] = []
        unknown: dict[str, int] = {}
        sample: list[str] = []
        for lines in records:
            parts = fold_record(lines)
            if since is not None:
                parts = [c for c in parts if c.day >= since]
            if known is not None:
                one = known.split(parts, now)
                parts = one.kept
                for env, n in one.unknown.items():
                    unknown[env] = unknown.get(env, 0) + n
                sample.extend(one.sample[: SAMPLE_KEYS - len(sample)])
            kept.append(parts)
        return kept, None if known is None else Split([], unknown, tuple(sample))

    async def poll_once(self) -> int:
        """Read what is available now from every shard or spool directory; returns how many
        records were folded."""
        if self._kinesis is not None:
            return await self._poll_kinesis()
        return await self._poll_spool()

    async def _poll_spool(self) -> int:
        total = 0
        base = self.config.data_dir / "spool"
        dirs = sorted(p for p in base.glob("worker-*") if p.is_dir()) if base.exists() else []
        for directory in dirs:
            source = f"spool:{directory.name}"
            for _ in range(10_000):
                raw = await self._run_sync(self.service.store.checkpoint, source)
                pos = _parse_pos(raw) or spool.Position(0, 0)
                frames = await self._run_sync(
                    partial(spool.read_frames, directory, pos, max_records=500, max_bytes=4 << 20)
                )
                if not frames:
                    break
                records = [decode_record(record.data) for record, _ in frames]
                end = frames[-1][1]
                await self._apply(records, source, f"{end.segment} {end.offset}")
                total += len(frames)
        return total

    async def _poll_kinesis(self) -> int:
        assert self._kinesis is not None
        stream = self._kinesis.stream
        total = 0
        for shard in await self._kinesis.list_shards():
            source = f"kinesis:{stream}:{shard.shard_id}"
            if shard.shard_id not in self._iterators:
                after = await self._run_sync(self.service.store.checkpoint, source)
                at_ms = self.config.replay_from_ms if after is None else None
                self._iterators[shard.shard_id] = await self._kinesis.shard_iterator(
                    shard.shard_id, after_sequence=after, at_ms=at_ms
                )
            for _ in range(1000):
                iterator = self._iterators[shard.shard_id]
                if iterator is None:
                    break  # closed shard, read to its end
                batch = await self._kinesis.get_records(iterator)
                self._iterators[shard.shard_id] = batch.next_iterator
                if batch.records:
                    records = [decode_record(data) for _seq, data in batch.records]
                    await self._apply(records, source, batch.records[-1][0])
                    total += len(batch.records)
                if not batch.records or batch.behind_ms == 0:
                    break
        return total

    async def prune_once(self) -> int:
        """Forget de-duplication rows older than the retention; returns how many."""
        before_day = int(self._wall_clock() - self.config.seen_retention_s) // 86_400
        total = 0
        for _ in range(PRUNE_MAX_CHUNKS):
            pruned = await self._run_sync(
                self.service.store.prune_seen, before_day, PRUNE_CHUNK,
                limiter=self.service.limiter,
            )
            total += pruned
            self.service.seen_pruned += pruned
            if pruned < PRUNE_CHUNK:
                break
        return total

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve_pruning)
            task_status.started()
            await self._serve_polling()

    async def _serve_polling(self) -> None:
        while True:
            folded = await self._contained(self.poll_once)
            if not folded:
                self.service.caught_up.set()
                await trio.sleep(self.config.poll_interval_s)

    async def _serve_pruning(self) -> None:
        while True:
            await self._contained(self.prune_once)
            await trio.sleep(self.config.prune_interval_s)

    async def _contained(self, step: Callable[[], Awaitable[int]]) -> int | None:
        """``step()``; a failure of the source or of the database ends the step only."""
        try:
            result = await step()
        except IngestError as exc:
            log.warning("insights consumer: %s; retrying", exc)
            self._iterators.clear()  # expired or unknown iterators: re-read checkpoints
            return None
        except (sqlite3.Error, OSError) as exc:
            self._failed("insights store: %s; retrying, logged again once it recovers", exc)
            return None
        except Exception as exc:  # a bug or a record no one foresaw: this pass ends, not the store
            self._failed("insights consumer failed: %r; retrying", exc, exc_info=True)
            return None
        if self._failing:
            log.warning("insights store recovered after %d failures", self.service.failures)
        self._failing = False
        return result

    def _failed(self, message: str, exc: Exception, *, exc_info: bool = False) -> None:
        self.service.failures += 1
        if not self._failing:
            log.error(message, exc, exc_info=exc_info)
        self._failing = True


def _parse_pos(raw: str | None) -> spool.Position | None:
    if raw is None:
        return None
    seg, off = raw.split()
    return spool.Position(int(seg), int(off))


async def run_insights(
    config: InsightsConfig,
    catalog: FlagCatalog | None = None,
    *,
    task_status: trio.TaskStatus[InsightsService] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open the store, start the consumer, hand back the service for the admin routes."""
    store = await trio.to_thread.run_sync(InsightsStore, config.db_path)
    service = InsightsService(store, catalog)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(InsightsConsumer(config, service).run)
            task_status.started(service)
    finally:
        store.close()
