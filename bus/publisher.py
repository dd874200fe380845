"""The store's side of the bus: one nng Pub0 socket carrying changes and heartbeats.

Theory of operation
-------------------
``publish`` encodes a change and hands it to nng with the synchronous, non-blocking send: it
costs 2-7 µs against about 120 µs for ``asend`` (docs/research/fanout.md §1), and because there is
no await between the send and recording ``latest_seq``, concurrent callers can never reorder
messages on the wire. Pub0 never blocks: when a subscriber's queue is full nng drops the
message for that subscriber, which the subscriber notices (gap or heartbeat) and repairs from
the snapshot server.

``run`` sends a :class:`Heartbeat` with the newest ``seq`` right after listening and then every
``heartbeat_interval``. A change that could not be sent at all (before ``run`` listens, after
it stops) still advances ``latest_seq``, so the next heartbeat makes subscribers resync.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pynng
import trio

from bus.addresses import listen
from bus.envelope import Change, EnvChange, Heartbeat, encode

log = logging.getLogger(__name__)

# Messages nng queues per subscriber before dropping; a flag change is rare and small, and a
# subscriber that falls further behind than this repairs from a snapshot anyway.
SEND_BUFFER_MESSAGES = 256


@dataclass(frozen=True, slots=True)
class PublisherStatistics:
    published: int  # changes handed to nng
    latest_seq: int
    heartbeats: int = 0
    unsent: int = 0  # changes that found no open socket (announced by the next heartbeat)


class BusPublisher:
    """Implements :class:`bus.store_ports.ChangePublisher` on nng Pub0."""

    def __init__(
        self, address: str, *, epoch: str, initial_seq: int, heartbeat_interval: float = 1.0
    ) -> None:
        if heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be positive")
        self.address = address
        self.epoch = epoch
        self.heartbeat_interval = heartbeat_interval
        self._latest_seq = initial_seq
        self.bound_address: str | None = None  # set by run(): tcp port 0 resolved
        self._sock: Any = None  # the pynng.Pub0 while run() is listening
        self._published = 0
        self._heartbeats = 0
        self._unsent = 0

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen at ``address`` and send heartbeats until cancelled."""
        sock = pynng.Pub0(send_buffer_size=SEND_BUFFER_MESSAGES)
        try:
            self.bound_address = listen(sock, self.address)
            self._sock = sock
            task_status.started(self)
            while True:
                if self._send(encode(Heartbeat(self._latest_seq, self.epoch))):
                    self._heartbeats += 1
                await trio.sleep(self.heartbeat_interval)
        finally:
            self._sock = None
            sock.close()

    async def publish(self, msg: Change | EnvChange) -> None:
        """Send one committed change. ``msg.seq`` must be above every seq published before."""
        if msg.seq <= self._latest_seq:
            raise ValueError(
                f"bus seq must increase: got {msg.seq} after {self._latest_seq} "
                "(subscribers would ignore it)"
            )
        data = encode(msg)
        self._latest_seq = msg.seq
        if self._send(data):
            self._published += 1
        else:
            self._unsent += 1
        # A schedule point as trio expects of an async function, but no cancel point: the
        # message is already on its way and the caller must not see it as failed.
        await trio.lowlevel.cancel_shielded_checkpoint()

    def statistics(self) -> PublisherStatistics:
        return PublisherStatistics(
            published=self._published,
            latest_seq=self._latest_seq,
            heartbeats=self._heartbeats,
            unsent=self._unsent,
        )

    def _send(self, data: bytes) -> bool:
        sock = self._sock
        if sock is None:
            return False
        try:
            sock.send(data, block=False)
        except (pynng.TryAgain, pynng.Closed):
            return False
        return True
