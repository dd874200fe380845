"""The worker's side of the bus: follows the store's changes in order, repairing from snapshots.

Theory of operation
-------------------
Two nng sockets, both dialled without blocking so nng keeps reconnecting while the store is
down or restarting: Sub0 for changes and heartbeats, Req0 for snapshots. ``run`` reports
``started`` at once (a worker serves before it has data), fetches a full snapshot, then follows
the bus, asking :class:`~bus.seqtrack.SeqTracker` what to do with each message or with
silence: apply it, ignore it, or resync.

A resync fetches a full snapshot (retrying with bounded, jittered backoff until the store
answers) while a second task keeps reading Sub0 into a bounded buffer, so changes published
while the snapshot is in flight are neither lost nor applied out of order: after
``apply_snapshot`` the buffered messages go through the tracker, which applies those above the
snapshot's ``seq`` and ignores the rest. Overflow policy: when the buffer is full it is dropped
and, once the snapshot is applied, another resync follows at once.

Memory is bounded by nng's receive queue, the resync buffer and one snapshot. When the sink is
slower than the bus, nng drops messages; the next message or heartbeat shows the gap.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from typing import Any

import pynng
import trio

from bus.addresses import dial
from bus.envelope import (
    Change,
    EnvChange,
    EnvelopeError,
    ErrorReply,
    Heartbeat,
    Snapshot,
    SnapshotRequest,
    decode,
    encode,
)
from bus.seqtrack import Action, BusEvent, Decision, Reason, SeqTracker
from bus.subscriber_ports import ChangeSink

log = logging.getLogger(__name__)

RESYNC_BUFFER_MESSAGES = 4096
RECV_BUFFER_MESSAGES = 256  # nng's own Sub0 queue; beyond it nng drops
MAX_CHANGE_BYTES = 64 * 1024 * 1024  # an import is one change and may be large
BACKOFF_BASE_S = 0.05
BACKOFF_MAX_S = 1.0
SNAPSHOT_TIMEOUT_MAX_S = 30.0
RECONNECT_MIN_MS = 50
RECONNECT_MAX_MS = 1000


@dataclass(frozen=True, slots=True)
class SubscriberStatistics:
    last_seq: int | None  # None until the first snapshot is applied
    applied: int  # changes applied one by one
    resyncs: int  # snapshots applied after the first one
    gaps_detected: int
    heartbeats: int
    connected: bool  # Sub0 has a live connection to a publisher
    last_message_age_s: float  # inf before the first message
    malformed: int = 0
    buffer_overflows: int = 0
    snapshot_failures: int = 0  # attempts that timed out or got an error reply
    backlog: int = 0  # messages held while a snapshot is in flight


class BusSubscriber:
    def __init__(
        self,
        sub_address: str,
        req_address: str,
        sink: ChangeSink,
        *,
        heartbeat_timeout: float = 3.0,
        snapshot_timeout: float = 2.0,
        buffer_limit: int = RESYNC_BUFFER_MESSAGES,
    ) -> None:
        self.sub_address = sub_address
        self.req_address = req_address
        self.snapshot_timeout = snapshot_timeout
        self._sink = sink
        self._buffer_limit = buffer_limit
        self._tracker = SeqTracker(heartbeat_timeout)
        self._synced = trio.Event()
        self._pipes = 0  # Sub0 connections, updated by nng callbacks under pynng's pipe lock
        self._applied = self._resyncs = self._gaps = self._heartbeats = 0
        self._malformed = self._overflows = self._snapshot_failures = 0
        self._backlog: _Backlog | None = None  # set while a resync is in flight

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        sub = pynng.Sub0(
            topics=b"",
            recv_buffer_size=RECV_BUFFER_MESSAGES,
            recv_max_size=MAX_CHANGE_BYTES,
            reconnect_time_min=RECONNECT_MIN_MS,
            reconnect_time_max=RECONNECT_MAX_MS,
        )
        req = pynng.Req0(
            recv_max_size=0,  # snapshots are as large as the store; nng's 1 MB default drops them
            reconnect_time_min=RECONNECT_MIN_MS,
            reconnect_time_max=RECONNECT_MAX_MS,
        )
        try:
            sub.add_post_pipe_connect_cb(self._pipe_added)
            sub.add_post_pipe_remove_cb(self._pipe_removed)
            dial(sub, self.sub_address)
            dial(req, self.req_address)
            task_status.started(self)
            await self._resync(sub, req, Reason.NOT_SYNCED)
            await self._follow(sub, req)
        finally:
            sub.close()
            req.close()

    def statistics(self) -> SubscriberStatistics:
        t = self._tracker
        age = math.inf if t.last_message_at is None else trio.current_time() - t.last_message_at
        return SubscriberStatistics(
            last_seq=t.last_seq,
            applied=self._applied,
            resyncs=self._resyncs,
            gaps_detected=self._gaps,
            heartbeats=self._heartbeats,
            connected=self._pipes > 0,
            last_message_age_s=age,
            malformed=self._malformed,
            buffer_overflows=self._overflows,
            snapshot_failures=self._snapshot_failures,
            backlog=0 if self._backlog is None else len(self._backlog.items),
        )

    async def wait_synced(self) -> None:
        """Return once the first snapshot has been applied."""
        await self._synced.wait()

    # -- following the bus -------------------------------------------------------------

    async def _follow(self, sub: Any, req: Any) -> None:
        while True:
            raw = None
            deadline = self._tracker.deadline()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                raw = await sub.arecv()
            now = trio.current_time()
            if raw is None:
                decision = self._tracker.on_tick(now)
                if decision.action is Action.RESYNC:
                    await self._resync(sub, req, decision.reason)
                continue
            msg = self._decode_event(raw)
            if msg is not None:
                decision = self._tracker.on_message(msg, now)
                if await self._act(msg, decision):
                    await self._resync(sub, req, decision.reason)

    async def _act(self, msg: BusEvent, decision: Decision) -> bool:
        """Carry out a decision; True when a resync is needed."""
        if isinstance(msg, Heartbeat):
            self._heartbeats += 1
        if decision.action is Action.APPLY:
            assert not isinstance(msg, Heartbeat)
            self._applied += 1
            await self._sink.apply_change(msg)
            return False
        if decision.action is Action.RESYNC:
            if decision.reason is Reason.GAP:
                self._gaps += 1
            return True
        return False

    def _decode_event(self, raw: bytes) -> BusEvent | None:
        try:
            msg = decode(raw)
        except EnvelopeError as exc:
            self._count_malformed(f"undecodable bus message: {exc}")
            return None
        if not isinstance(msg, Change | EnvChange | Heartbeat):
            self._count_malformed(f"unexpected {type(msg).__name__} on the bus")
            return None
        return msg

    def _count_malformed(self, what: str) -> None:
        if self._malformed == 0:  # once: a misconfigured peer would flood the log otherwise
            log.warning("%s (further ones are only counted)", what)
        self._malformed += 1

    # -- resync ------------------------------------------------------------------------

    async def _resync(self, sub: Any, req: Any, reason: Reason) -> None:
        """Replace the state with a full snapshot, then apply what arrived meanwhile."""
        while True:
            log.info("bus resync (%s) at seq %s", reason.value, self._tracker.last_seq)
            backlog = self._backlog = _Backlog(self._buffer_limit)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._collect, sub, backlog)
                    snapshot = await self._fetch_snapshot(req)
                    nursery.cancel_scope.cancel()
            finally:
                self._backlog = None

            # Bookkeeping first, so statistics() agree with the sink as soon as it has the data.
            self._tracker.on_snapshot(snapshot.seq, snapshot.epoch, trio.current_time())
            if self._synced.is_set():
                self._resyncs += 1
            await self._sink.apply_snapshot(snapshot, full=True)
            self._synced.set()
            if backlog.overflowed:
                reason = Reason.OVERFLOW
                continue
            for arrived_at, msg in backlog.items:
                decision = self._tracker.on_message(msg, arrived_at)
                if await self._act(msg, decision):
                    reason = decision.reason
                    break
            else:
                return

    async def _collect(self, sub: Any, backlog: _Backlog) -> None:
        """Read the bus into ``backlog`` until cancelled (while a snapshot is in flight)."""
        while True:
            msg = self._decode_event(await sub.arecv())
            if msg is None:
                continue
            was_overflowed = backlog.overflowed
            if not backlog.add(msg, trio.current_time()) and not was_overflowed:
                self._overflows += 1
                log.warning(
                    "bus resync buffer overflowed (%d messages); will resync again", backlog.limit
                )

    async def _fetch_snapshot(self, req: Any) -> Snapshot:
        """Ask until the store answers with a snapshot; never gives up, backs off instead."""
        request = encode(SnapshotRequest(None))
        attempt = 0
        while True:
            problem: str
            # A store too big to snapshot within snapshot_timeout must still get through, so
            # each retry waits longer. Waiting costs nothing while the store is down: nng sends
            # the pending request the moment it connects.
            timeout = min(SNAPSHOT_TIMEOUT_MAX_S, self.snapshot_timeout * 2 ** min(attempt, 16))
            try:
                with trio.fail_after(timeout):
                    await req.asend(request)
                    raw = await req.arecv()
                reply = await trio.to_thread.run_sync(decode, raw)  # may be megabytes
            except trio.TooSlowError:
                problem = f"no snapshot reply within {timeout:g} s"
            except EnvelopeError as exc:
                problem = f"undecodable snapshot reply: {exc}"
            except pynng.NNGException as exc:
                problem = f"snapshot request failed: {exc}"
            else:
                if isinstance(reply, Snapshot):
                    if attempt:
                        log.info("snapshot fetched after %d failed attempts", attempt)
                    return reply
                if isinstance(reply, ErrorReply):
                    problem = f"snapshot server answered: {reply.message}"
                else:
                    problem = f"snapshot server answered with a {type(reply).__name__}"
            self._snapshot_failures += 1
            if attempt == 0:  # once per episode
                log.warning("%s from %s; retrying with backoff", problem, self.req_address)
            attempt += 1
            delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** min(attempt, 16))
            await trio.sleep(delay * random.uniform(0.5, 1.0))

    # -- nng pipe callbacks (nng threads, serialised by pynng's pipe lock) -------------

    def _pipe_added(self, _pipe: Any) -> None:
        self._pipes += 1

    def _pipe_removed(self, _pipe: Any) -> None:
        self._pipes -= 1


class _Backlog:
    """Bus messages that arrive while a snapshot is in flight, bounded by ``limit``.

    Overflow policy: drop everything collected, accept nothing more, and let the caller resync
    again once the snapshot is applied.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: list[tuple[float, BusEvent]] = []
        self.overflowed = False

    def add(self, msg: BusEvent, now: float) -> bool:
        """Keep ``msg``; False when it was dropped (the backlog has overflowed)."""
        if self.overflowed:
            return False
        if len(self.items) >= self.limit:
            self.items.clear()
            self.overflowed = True
            return False
        self.items.append((now, msg))
        return True
