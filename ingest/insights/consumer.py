"""The insights consumer: reads the events log and folds it into the insights store.

Sources:
- Kinesis (``kinesis_stream`` set): every shard, from its checkpointed sequence number (or
  ``TRIM_HORIZON``; ``AT_TIMESTAMP`` for a replay), polled every ``poll_interval_s``. Closed
  shards (after resharding) are read to their end; new shards are picked up on the next listing.
- The spool (no Kinesis): every ``DATA_DIR/spool/worker-*`` directory, from its checkpointed
  position. In this mode the spool is the log; its retention budget bounds how far back a
  replay can go.

Each batch's counts and its checkpoint are committed together (``InsightsStore.apply``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

from ingest import spool
from ingest.errors import IngestError
from ingest.insights.fold import fold_line
from ingest.insights.store import InsightsStore
from ingest.ports import FlagCatalog
from ingest.records import decode_record

log = logging.getLogger("flagstream.insights")


@dataclass(frozen=True, slots=True)
class InsightsConfig:
    data_dir: Path
    kinesis_stream: str | None = None
    kinesis_endpoint: str | None = None
    poll_interval_s: float = 1.0
    replay_from_ms: int | None = None  # Kinesis: start every shard AT_TIMESTAMP this time

    @property
    def db_path(self) -> Path:
        return self.data_dir / "insights.sqlite3"


class InsightsService:
    """What the admin routes hold: the store (read side) and, optionally, the flag catalog."""

    def __init__(self, store: InsightsStore, catalog: FlagCatalog | None = None) -> None:
        self.store = store
        self.catalog = catalog
        self.limiter = trio.CapacityLimiter(1)
        self.caught_up = trio.Event()  # set once the source had nothing more to read


class InsightsConsumer:
    def __init__(self, config: InsightsConfig, service: InsightsService) -> None:
        self.config = config
        self.service = service
        self._iterators: dict[str, str | None] = {}
        self._kinesis = None
        if config.kinesis_stream is not None:
            from ingest.kinesis import KinesisClient

            self._kinesis = KinesisClient(
                config.kinesis_stream, endpoint_url=config.kinesis_endpoint
            )

    async def _apply(self, lines: list[dict[str, object]], source: str, position: str) -> None:
        contributions = [fold_line(line) for line in lines]
        await trio.to_thread.run_sync(
            self.service.store.apply, contributions, source, position, limiter=self.service.limiter
        )

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
                raw = await trio.to_thread.run_sync(self.service.store.checkpoint, source)
                pos = _parse_pos(raw) or spool.Position(0, 0)
                frames = await trio.to_thread.run_sync(
                    partial(spool.read_frames, directory, pos, max_records=500, max_bytes=4 << 20)
                )
                if not frames:
                    break
                lines = [line for record, _ in frames for line in decode_record(record.data)]
                end = frames[-1][1]
                await self._apply(lines, source, f"{end.segment} {end.offset}")
                total += len(frames)
        return total

    async def _poll_kinesis(self) -> int:
        assert self._kinesis is not None
        stream = self._kinesis.stream
        total = 0
        for shard in await self._kinesis.list_shards():
            source = f"kinesis:{stream}:{shard.shard_id}"
            if shard.shard_id not in self._iterators:
                after = await trio.to_thread.run_sync(self.service.store.checkpoint, source)
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
                    lines = [line for _seq, data in batch.records for line in decode_record(data)]
                    await self._apply(lines, source, batch.records[-1][0])
                    total += len(batch.records)
                if not batch.records or batch.behind_ms == 0:
                    break
        return total

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            try:
                folded = await self.poll_once()
            except IngestError as exc:
                log.warning("insights consumer: %s; retrying", exc)
                self._iterators.clear()  # expired or unknown iterators: re-read checkpoints
                folded = 0
            if folded == 0:
                self.service.caught_up.set()
                await trio.sleep(self.config.poll_interval_s)


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
