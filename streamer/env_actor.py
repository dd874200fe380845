"""The environment actor: one environment's state and the fan-out to its streams.

Theory of operation
-------------------
One :class:`EnvActor` per environment per worker. It owns an :class:`~streamer.envstate.EnvState`
and the set of attached :class:`~streamer.client_actor.Conn` per stream kind, and reads a
bounded inbox (``async for msg in inbox`` with ``match``): :class:`Apply` (in-order bus items),
:class:`Replace` (a snapshot), :class:`Attach` (a new stream), :class:`Close`.
Overflow policy of the inbox: backpressure (the bus subscriber or the connecting client waits).

A change is encoded once per stream kind (:func:`~streamer.envstate.delta_frames`); the frames
of one bus message are joined so each client costs one ``send()``. :meth:`EnvActor._fanout`
then writes those same bytes to every FAST connection in one loop of non-blocking ``send()``
calls on the stdlib socket, with no await and no task switch inside, so nothing can interleave
with it. A connection whose send would block or is partial turns SLOW: the unsent remainder and
later frames go into its mailbox and its client actor drains them. Mailbox overflow policy:
replace the backlog with a fresh ``put`` (counted as ``slow_resyncs``; the put's bytes are
shared with every client, so a slow client costs at most its bound plus one frame remainder).
A client whose socket takes no byte for ``stall_timeout`` is disconnected by its client actor
with reason ``slow_client``.

The cyclic garbage collector is disabled for the duration of a fan-out (it is re-enabled right
after, if it was enabled): a collection in the middle would stall every client behind it.
The worker also freezes long-lived objects after connection bursts (see the acceptor).

One heartbeat ticker per environment writes the heartbeat comment to every stream, every
``heartbeat_interval`` seconds on an absolute schedule, and also prunes closed connections.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable
from dataclasses import dataclass

import trio

from store.bus.envelope import ItemChange
from streamer.client_actor import CLOSED, FAST, HEARTBEAT_KEY, PUT_KEY, Conn, StreamCounters
from streamer.envstate import Delta, EnvState, EnvView, delta_frames
from streamer.http_head import STREAM_RESPONSE_HEAD, StreamKind
from streamer.sse import HEARTBEAT_CHUNK

INBOX_SIZE = 1024
_HEAD_KEY = ("", "head")


@dataclass(frozen=True, slots=True)
class Apply:
    items: tuple[ItemChange, ...]


@dataclass(frozen=True, slots=True)
class Replace:
    items: tuple[ItemChange, ...]


@dataclass(frozen=True, slots=True)
class Attach:
    conn: Conn


@dataclass(frozen=True, slots=True)
class Close:
    reason: str


EnvMessage = Apply | Replace | Attach | Close

Frames = list[tuple[tuple[str, str], bytes]]


class EnvActor:
    def __init__(
        self, env_key: str, counters: StreamCounters, *, heartbeat_interval: float = 20.0
    ) -> None:
        self.env_key = env_key
        self.state = EnvState()
        self._counters = counters
        self._heartbeat_interval = heartbeat_interval
        self._subs: dict[StreamKind, set[Conn]] = {k: set() for k in StreamKind}
        self._send, self._inbox = trio.open_memory_channel[EnvMessage](INBOX_SIZE)

    # -- the handle other actors use ---------------------------------------------------

    async def send(self, msg: EnvMessage) -> None:
        await self._send.send(msg)

    async def attach(self, conn: Conn) -> None:
        await self._send.send(Attach(conn))

    def view(self) -> EnvView:
        """The current revision (read-only), for polling requests."""
        return self.state.view()

    def connections(self) -> list[Conn]:
        """The attached connections that are still open."""
        return [c for subs in self._subs.values() for c in subs if c.state != CLOSED]

    # -- the actor ------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[EnvActor] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._tick)
                task_status.started(self)
                async with self._inbox:
                    async for msg in self._inbox:
                        match msg:
                            case Apply(items):
                                self._deliver(self.state.apply(items))
                            case Replace(items):
                                result = self.state.replace(items)
                                if result.needs_put:
                                    self._fanout_put()
                                else:
                                    self._deliver(result.deltas)
                            case Attach(conn):
                                self._attach(conn)
                            case Close(reason):
                                self._close_all(reason)
                                break
                nursery.cancel_scope.cancel()
        finally:
            self._close_all("env_removed")

    def _deliver(self, deltas: Iterable[Delta]) -> None:
        frames_all: Frames = []
        frames_flags: Frames = []
        for delta in deltas:
            f = delta_frames(delta)
            frames_all.append((f.coalesce_key, f.all))
            if f.flags is not None:
                frames_flags.append((f.coalesce_key, f.flags))
        if frames_all:
            self._fanout(self._subs[StreamKind.ALL], frames_all)
        if frames_flags:
            self._fanout(self._subs[StreamKind.FLAGS], frames_flags)

    def _fanout_put(self) -> None:
        view = self.state.view()
        for kind, frame in ((StreamKind.ALL, view.put_all_frame),
                            (StreamKind.FLAGS, view.put_flags_frame)):
            self._fanout(self._subs[kind], [(PUT_KEY, frame)])

    def _fanout(self, subs: set[Conn], frames: Frames) -> None:
        """Write ``frames`` to every connection in ``subs``: the hot loop."""
        if not subs:
            return
        payload = frames[0][1] if len(frames) == 1 else b"".join(f for _, f in frames)
        size = len(payload)
        trouble: list[tuple[Conn, int]] = []
        gc_was_enabled = gc.isenabled()
        gc.disable()
        t_wall, t_cpu = time.perf_counter_ns(), time.thread_time_ns()
        try:
            for conn in subs:
                if conn.state != FAST:
                    trouble.append((conn, -1))
                    continue
                try:
                    sent = conn.sock.send(payload)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    sent = -2
                if sent != size:
                    trouble.append((conn, sent))
        finally:
            wall, cpu = time.perf_counter_ns() - t_wall, time.thread_time_ns() - t_cpu
            if gc_was_enabled:
                gc.enable()
        self._counters.fanned_out(len(subs), wall, cpu)
        for conn, sent in trouble:
            if conn.state == CLOSED or sent == -2:
                subs.discard(conn)
                if sent == -2:
                    conn.request_close("reset")
            elif sent == -1:
                self._queue_slow(conn, frames)
            else:
                self._enter_slow(conn, frames, sent)

    def _enter_slow(self, conn: Conn, frames: Frames, sent: int) -> None:
        """The first ``sent`` bytes of the joined frames went out; queue the rest."""
        self._counters.slow_entries += 1
        rest = frames
        for i, (_, frame) in enumerate(frames):
            if sent < len(frame):
                conn.mailbox.set_inflight(memoryview(frame)[sent:])
                rest = frames[i + 1:]
                break
            sent -= len(frame)
        conn.enter_slow()
        self._queue_slow(conn, rest)

    def _queue_slow(self, conn: Conn, frames: Frames) -> None:
        mailbox = conn.mailbox
        for key, frame in frames:
            if key == HEARTBEAT_KEY:
                mailbox.push_heartbeat(frame)
            elif key == PUT_KEY:
                mailbox.reset_to_put(frame)
            elif not mailbox.push(key, frame):
                view = self.state.view()
                put = view.put_all_frame if conn.kind is StreamKind.ALL else view.put_flags_frame
                mailbox.reset_to_put(put)  # the put already includes this frame's change
                self._counters.slow_resyncs += 1
                return

    def _attach(self, conn: Conn) -> None:
        if conn.state == CLOSED:
            return
        view = self.state.view()
        put = view.put_all_frame if conn.kind is StreamKind.ALL else view.put_flags_frame
        self._subs[conn.kind].add(conn)
        try:
            sent = conn.sock.sendmsg([STREAM_RESPONSE_HEAD, put])
        except BlockingIOError:
            sent = 0
        except OSError:
            self._subs[conn.kind].discard(conn)
            conn.request_close("reset")
            return
        if sent < len(STREAM_RESPONSE_HEAD) + len(put):
            self._enter_slow(conn, [(_HEAD_KEY, STREAM_RESPONSE_HEAD), (PUT_KEY, put)], sent)

    def _close_all(self, reason: str) -> None:
        for subs in self._subs.values():
            for conn in subs:
                conn.request_close(reason)
            subs.clear()

    async def _tick(self) -> None:
        next_at = trio.current_time() + self._heartbeat_interval
        while True:
            await trio.sleep_until(next_at)
            next_at += self._heartbeat_interval
            self._counters.heartbeats += 1
            for subs in self._subs.values():
                for conn in [c for c in subs if c.state == CLOSED]:
                    subs.discard(conn)
                self._fanout(subs, [(HEARTBEAT_KEY, HEARTBEAT_CHUNK)])
