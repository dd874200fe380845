"""The ingest actor: one per worker process, owning its queue, its spool and its shipper.

Theory of operation
-------------------
``IngestHandle.submit`` encodes a validated payload into records (``ingest.records``) and puts
it on a bounded queue (``queue_capacity`` submissions; overflow policy: wait up to
``admission_timeout_s``, then refuse with ``IngestUnavailable`` → HTTP 503, counted in
``dropped``). The *writer* task takes everything waiting (group commit), appends it to the
spool segment and ``fdatasync``s once, then wakes the submitters: **a 202 means the events are
on disk**. A ``kill -9`` of the worker therefore loses no acknowledged event; it can only make
the shipper re-send the records between its last checkpoint and the kill (at-least-once; every
event carries a stable ``id``, see ``ingest.records``). Power loss is covered as far as the disk
honours ``fdatasync``.

The *shipper* task (only with ``kinesis_stream``) reads the spool in order from its checkpoint,
plans ``PutRecords`` calls within the service limits (``ingest.batching``), retries only the
failed records of a partial failure with jittered exponential backoff, paces itself when Kinesis
throttles, and after each fully stored batch moves its checkpoint and deletes spool segments it
has passed. While Kinesis is unreachable the spool simply grows (up to ``spool_max_bytes``, then
new payloads get 503) and is drained in order when Kinesis is back. Without a stream the spool is
the sink: segments are kept up to ``spool_retain_bytes`` for the insights consumer.

The disk can fail under every step (a full disk, no file descriptor left). A spool write that
fails is answered 503 to every payload of its group (the SDKs send them again later) and is
never acknowledged; the spool cuts back what the failed write left (``ingest.spool``). A
retention pass, a checkpoint or a read of the shipper that fails is retried on the next
round. Each is counted in ``disk_errors`` and logged once per episode; none ends the actor,
whose end would end its worker and every stream the worker holds.

Shutdown (``IngestHandle.close()`` or cancellation of ``run``): new submissions get 503, what is
queued is committed, and the shipper gets ``flush_deadline_s`` (shielded) to drain the backlog;
whatever is left stays in the spool for the next start.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from ingest import spool
from ingest.batching import Backoff, Episode, Pacer, classify, plan_batch
from ingest.errors import IngestUnavailable, SinkThrottled, SinkUnavailable
from ingest.ports import Record, RecordSink
from ingest.records import MAX_RECORD_BYTES, Payload, encode_records

log = logging.getLogger("flagstream.ingest")


@dataclass(frozen=True, slots=True)
class IngestConfig:
    data_dir: Path
    worker_id: int
    kinesis_stream: str | None = None
    kinesis_endpoint: str | None = None
    kinesis_read_timeout_s: float = 10.0
    queue_capacity: int = 1024
    admission_timeout_s: float = 2.0
    group_commit_max_bytes: int = 16 * 1024 * 1024
    segment_bytes: int = 64 * 1024 * 1024
    spool_max_bytes: int = 4 * 1024 * 1024 * 1024
    spool_retain_bytes: int = 1024 * 1024 * 1024
    flush_deadline_s: float = 5.0
    max_inflight_calls: int = 4  # PutRecords calls in parallel; 1 keeps strict spool order
    max_record_bytes: int = MAX_RECORD_BYTES
    backoff: Backoff = field(default_factory=Backoff)
    pacer_min_s: float = 0.05
    pacer_max_s: float = 5.0
    seed: int | None = None

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool" / f"worker-{self.worker_id}"


@dataclass(frozen=True, slots=True)
class IngestStatistics:
    queued: int  # submissions waiting for the spool writer
    sent: int  # records stored by Kinesis
    retried: int  # records re-sent after a partial failure
    spooled: int  # records made durable in the spool (every accepted record)
    dropped: int  # payloads refused with 503 (never acknowledged)
    kinesis_errors: int  # PutRecords calls that failed as a whole
    throttled: int  # records or calls Kinesis throttled
    payloads: int  # payloads accepted (202)
    events: int  # events accepted
    backlog_bytes: int  # spool bytes not yet stored by Kinesis (0 without Kinesis)
    disk_errors: int  # spool reads and writes that failed (writes: their payloads got 503)


class _Submission:
    __slots__ = ("done", "error", "events", "frames", "records")

    def __init__(self, frames: bytes, records: int, events: int) -> None:
        self.frames = frames
        self.records = records
        self.events = events
        self.done = trio.Event()
        self.error: str | None = None


class IngestHandle:
    """What the HTTP handlers hold: submit payloads, read statistics, request shutdown."""

    def __init__(self, actor: IngestActor) -> None:
        self._actor = actor

    async def submit(self, payload: Payload) -> None:
        """Return once the payload is durable in the spool. Raises ``PayloadRejected`` (an
        event over the record limit, 413) or ``IngestUnavailable`` (503); never drops silently."""
        await self._actor._submit(payload)

    def statistics(self) -> IngestStatistics:
        return self._actor._statistics()

    def close(self) -> None:
        """Begin a graceful shutdown; ``run`` returns after the final flush."""
        self._actor._close_requested.set()


class IngestActor:
    def __init__(self, config: IngestConfig, sink: RecordSink | None = None) -> None:
        self.config = config
        if sink is None and config.kinesis_stream is not None:
            from ingest.kinesis import KinesisClient

            sink = KinesisClient(
                config.kinesis_stream,
                endpoint_url=config.kinesis_endpoint,
                read_timeout_s=config.kinesis_read_timeout_s,
            )
        self._sink = sink
        self._send, self._receive = trio.open_memory_channel[_Submission](config.queue_capacity)
        self._disk = trio.CapacityLimiter(1)
        self._writer = spool.SpoolWriter(config.spool_dir, segment_bytes=config.segment_bytes)
        self._checkpoint_path = config.spool_dir / "shipped.checkpoint"
        self._rng = random.Random(config.seed)
        self._pacer = Pacer(min_s=config.pacer_min_s, max_s=config.pacer_max_s)
        self._outage = Episode()
        self._closing = False
        self._close_requested = trio.Event()
        self._new_data = trio.Event()
        self._durable_end = spool.Position(1, 0)
        self._shipped = spool.Position(1, 0)
        self._inflight: list[_Submission] = []
        self._stats = {
            k: 0
            for k in (
                "sent",
                "retried",
                "spooled",
                "dropped",
                "kinesis_errors",
                "throttled",
                "payloads",
                "events",
                "backlog_bytes",
                "disk_errors",
            )
        }
        self._disk_trouble = Episode()

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[IngestHandle] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self._durable_end = await trio.to_thread.run_sync(self._writer.open)
        if self._sink is not None:
            start = await trio.to_thread.run_sync(spool.read_checkpoint, self._checkpoint_path)
            first = spool.list_segments(self.config.spool_dir)[0]
            self._shipped = start or spool.Position(first, 0)
            self._stats["backlog_bytes"] = await self._backlog_bytes()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer_loop)
                if self._sink is not None:
                    nursery.start_soon(self._shipper_loop)
                task_status.started(IngestHandle(self))
                await self._close_requested.wait()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self.config.flush_deadline_s
                await self._final_flush()
            await trio.to_thread.run_sync(self._writer.close)

    async def _final_flush(self) -> None:
        self._closing = True
        pending = [s for s in self._inflight if not s.done.is_set()]
        while True:
            try:
                pending.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        if pending:
            await self._commit(pending)
        if self._sink is not None:
            with contextlib.suppress(OSError):  # what is left stays for the next start
                while self._shipped < self._durable_end:
                    if not await self._ship_next():
                        break
        log.info(
            "ingest worker %d stopped; spool end %s, shipped to %s",
            self.config.worker_id,
            self._durable_end,
            self._shipped,
        )

    # -- submit and the writer (group commit) -------------------------------------------------

    async def _submit(self, payload: Payload) -> None:
        if self._closing:
            raise IngestUnavailable("ingest is shutting down")
        if self._sink is not None and self._stats["backlog_bytes"] > self.config.spool_max_bytes:
            self._stats["dropped"] += 1
            raise IngestUnavailable("event spool is full while Kinesis is unavailable")
        records = encode_records(payload, self.config.max_record_bytes)
        sub = _Submission(
            b"".join(spool.encode_frame(r) for r in records), len(records), len(payload.events)
        )
        with trio.move_on_after(self.config.admission_timeout_s):
            await self._send.send(sub)
            await sub.done.wait()
            if sub.error is not None:
                self._stats["dropped"] += 1
                raise IngestUnavailable(sub.error)
            return
        self._stats["dropped"] += 1
        raise IngestUnavailable("ingest queue is full")

    async def _writer_loop(self) -> None:
        async for first in self._receive:
            group, size = [first], len(first.frames)
            while size < self.config.group_commit_max_bytes:
                try:
                    sub = self._receive.receive_nowait()
                except trio.WouldBlock:
                    break
                group.append(sub)
                size += len(sub.frames)
            self._inflight = group
            await self._commit(group)
            self._inflight = []

    async def _commit(self, group: Sequence[_Submission]) -> None:
        frames = b"".join(s.frames for s in group)
        try:
            end = await trio.to_thread.run_sync(self._writer.append, frames, limiter=self._disk)
        except OSError as exc:
            self._disk_failed("spool write", exc)
            for s in group:
                s.error = f"event spool is not writable: {exc.strerror or exc}"
                s.done.set()
            return
        self._disk_ok()
        self._durable_end = end
        if self._sink is not None:
            self._stats["backlog_bytes"] += len(frames)
        for s in group:
            self._stats["spooled"] += s.records
            self._stats["payloads"] += 1
            self._stats["events"] += s.events
            s.done.set()
        self._new_data.set()
        if self._sink is None and end.offset <= len(frames):
            # A segment was just started: the moment to apply the retention budget.
            try:
                await trio.to_thread.run_sync(
                    partial(
                        spool.enforce_retention,
                        self.config.spool_dir,
                        self.config.spool_retain_bytes,
                        active=end.segment,
                    ),
                    limiter=self._disk,
                )
            except OSError as exc:  # the next segment's start tries again
                self._disk_failed("spool retention", exc)

    def _disk_failed(self, what: str, exc: OSError) -> None:
        self._stats["disk_errors"] += 1
        if self._disk_trouble.occurred():
            log.error("ingest %s failed (%s); events get 503 while the spool cannot be "
                      "written", what, exc)

    def _disk_ok(self) -> None:
        if self._disk_trouble.resolved():
            log.warning("ingest spool writable again after %d failed disk operations",
                        self._disk_trouble.count)
            self._disk_trouble.count = 0

    # -- the shipper --------------------------------------------------------------------------

    async def _shipper_loop(self) -> None:
        while True:
            if self._shipped >= self._durable_end:
                self._new_data = trio.Event()
                if self._shipped >= self._durable_end:
                    await self._new_data.wait()
                continue
            try:
                shipped = await self._ship_next()
            except OSError as exc:  # reading the spool or saving the checkpoint
                self._disk_failed("shipper", exc)
                await trio.sleep(1.0)
                continue
            if not shipped:
                await trio.sleep(0.05)  # nothing readable yet (torn tail); try again shortly

    async def _ship_next(self) -> bool:
        """Ship the next window of the spool (up to ``max_inflight_calls`` PutRecords calls in
        parallel) until every record is stored, then move the checkpoint past it; False if
        there was nothing to read."""
        calls = self.config.max_inflight_calls
        window = await trio.to_thread.run_sync(
            partial(
                spool.read_frames,
                self.config.spool_dir,
                self._shipped,
                max_records=500 * calls,
                max_bytes=5 * 1024 * 1024 * calls,
            ),
            limiter=self._disk,
        )
        if not window:
            return False
        records = [r for r, _ in window]
        batches: list[list[Record]] = []
        taken = 0
        while taken < len(records) and len(batches) < calls:
            n = plan_batch(records[taken:])
            batches.append(records[taken : taken + n])
            taken += n
        async with trio.open_nursery() as nursery:
            for batch in batches:
                nursery.start_soon(self._put_all, batch)
        self._shipped = window[taken - 1][1]
        await trio.to_thread.run_sync(self._save_checkpoint, self._shipped, limiter=self._disk)
        self._stats["backlog_bytes"] = await self._backlog_bytes()
        return True

    def _save_checkpoint(self, pos: spool.Position) -> None:
        spool.write_checkpoint(self._checkpoint_path, pos)
        spool.delete_segments_before(self.config.spool_dir, pos.segment)

    async def _backlog_bytes(self) -> int:
        return await trio.to_thread.run_sync(
            spool.bytes_after, self.config.spool_dir, self._shipped, limiter=self._disk
        )

    async def _put_all(self, records: list[Record]) -> None:
        """One planned batch: retry only the failed records until all are stored."""
        assert self._sink is not None
        pending = records
        attempt = 0
        while pending:
            if self._pacer.delay_s > 0:
                await trio.sleep(self._pacer.delay_s)
            try:
                outcomes = await self._sink.put_records(pending)
            except SinkThrottled:
                self._stats["throttled"] += 1
                self._pacer.on_throttled()
            except SinkUnavailable as exc:
                self._stats["kinesis_errors"] += 1
                if self._outage.occurred():
                    log.warning("Kinesis unavailable, events stay in the spool: %s", exc)
            else:
                result = classify(outcomes)
                self._stats["sent"] += result.stored
                if self._outage.resolved():
                    log.warning("Kinesis reachable again after %d failed calls", self._outage.count)
                    self._outage.count = 0
                if result.throttled:
                    self._stats["throttled"] += result.throttled
                    self._pacer.on_throttled()
                else:
                    self._pacer.on_clean()
                if not result.failed:
                    return
                self._stats["retried"] += len(result.failed)
                pending = [pending[i] for i in result.failed]
            await trio.sleep(self.config.backoff.delay(attempt, self._rng.random()))
            attempt += 1

    def _statistics(self) -> IngestStatistics:
        queued = self._receive.statistics().current_buffer_used
        return IngestStatistics(queued=queued, **self._stats)
