"""The environment actor: one environment's state and the fan-out to its streams.

Theory of operation
-------------------
One :class:`EnvActor` per environment per worker. It owns an
:class:`~streamer.environments.envstate.EnvState`
and the set of attached :class:`~streamer.fastpath.stream_conn.StreamConn` per stream kind, and
reads a
bounded inbox (``async for msg in inbox`` with ``match``): :class:`Apply` (in-order bus items),
:class:`Replace` (a snapshot), :class:`Attach` (a new stream), :class:`Close`.
Overflow policy of the inbox: backpressure (the bus subscriber or the connecting stream waits).

A change is encoded once per stream kind (:func:`~streamer.environments.envstate.delta_frames`); the
frames of one bus message are joined so each stream costs one ``send()``, and
:func:`~streamer.fastpath.fanout.fan_out` writes those same bytes to every FAST stream in one loop
of non-blocking sends with the cyclic garbage collector off; a stream that does not keep up turns
SLOW and its stream actor drains its bounded mailbox (overflow policy: a fresh ``put``; see
:mod:`streamer.fastpath.fanout`). A stream whose socket takes no byte for ``stall_timeout`` is
disconnected by its stream actor with reason ``slow_client``. The worker also freezes
long-lived objects after connection bursts (see :mod:`streamer.fastpath.gc_policy`).

One heartbeat ticker per environment writes the heartbeat comment to every stream, every
``heartbeat_interval`` seconds on an absolute schedule, and also prunes closed connections.
A closing stream also tells the actor at once (:meth:`EnvActor.detach_nowait`, a
:class:`Detach` message), so a client-side context group is freed with its last stream, not
at the next heartbeat; the prune covers a Detach that did not fit in the inbox. A tick after
groups were freed also trims the C heap
(:func:`~streamer.fastpath.load_monitor.release_free_memory`), so their memory leaves the RSS.

Client-side streams (``/eval``, ``/meval``: :class:`~streamer.fastpath.stream_conn.ClientSideConn`)
carry flags evaluated per context. They cost nothing until the first one attaches: then the actor
creates the parsed :class:`~streamer.clientside.client_model.EvalModel` and the
:class:`~streamer.clientside.client_groups.ClientGroups`, and after each change (server-side fan-out
first, unchanged) syncs the model and fans each group's frames out to that group's
connections with the same loop. Ping streams (``/ping``, ``/mping``) get a ``ping`` per change,
each connection delayed by a random time in [jitter/2, jitter] and at most one pending at a
time (ld-relay's ``PING_STREAM_JITTER_TIME``), so old SDKs do not all re-poll at once.

Containment (:mod:`store.containment`): an exception in the actor restarts it in place with
backoff and closes its streams (see :meth:`EnvActor.run`); an exception in one context
group's evaluation closes that group's streams only (``evaluation_failed``), and the other
groups and the actor go on.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import trio

from bus.envelope import ItemChange
from streamer.clientside.client_groups import MAX_WARM_GROUPS, ClientGroups
from streamer.clientside.client_model import Changed, EvalModel
from streamer.clientside.client_streams import PING_FRAME, PING_KINDS
from streamer.environments.envstate import Delta, EnvState, EnvView, delta_frames
from streamer.fastpath.fanout import ConnT, Frames, enter_slow, fan_out
from streamer.fastpath.http_head import STREAM_RESPONSE_HEAD, StreamKind
from streamer.fastpath.load_monitor import release_free_memory
from streamer.fastpath.mailbox import HEARTBEAT_KEY, PUT_KEY
from streamer.fastpath.sse import HEARTBEAT_CHUNK, retry_chunk
from streamer.fastpath.stream_conn import CLOSED, ClientSideConn, StreamConn
from streamer.fastpath.worker_counters import WorkerCounters

INBOX_SIZE = 1024
RESTART_BACKOFF_MIN_S = 0.1  # a failed round restarts after this, doubling ...
RESTART_BACKOFF_MAX_S = 5.0  # ... up to this (senders wait meanwhile: keep it short)
RESTART_RESET_S = 60.0  # a round that lasted this long starts the backoff over
_HEAD_KEY = ("", "head")
_PING_KEY = ("", "ping")


@dataclass(frozen=True, slots=True)
class Apply:
    items: tuple[ItemChange, ...]


@dataclass(frozen=True, slots=True)
class Replace:
    items: tuple[ItemChange, ...]


@dataclass(frozen=True, slots=True)
class Attach:
    conn: StreamConn


@dataclass(frozen=True, slots=True)
class Detach:
    conn: StreamConn


@dataclass(frozen=True, slots=True)
class Close:
    reason: str


EnvMessage = Apply | Replace | Attach | Detach | Close


class EnvActor:
    def __init__(
        self, env_key: str, counters: WorkerCounters, *, heartbeat_interval: float = 20.0,
        ping_jitter: float = 0.5, max_warm_groups: int = MAX_WARM_GROUPS,
    ) -> None:
        self.env_key = env_key
        self.state = EnvState()
        self._counters = counters
        self._heartbeat_interval = heartbeat_interval
        self._subs: dict[StreamKind, set[StreamConn]] = {k: set() for k in StreamKind}
        self._send, self._inbox = trio.open_memory_channel[EnvMessage](INBOX_SIZE)
        self._model: EvalModel | None = None  # parsed items: only once client-side is used
        self._groups: ClientGroups[ClientSideConn] | None = None
        self._max_warm_groups = max_warm_groups
        self._freed_at_trim = 0  # groups.freed when the heap was last trimmed
        self._ping_jitter = ping_jitter
        self._ping_heap: list[tuple[float, int, StreamConn]] = []
        self._ping_pending: set[StreamConn] = set()
        self._ping_seq = itertools.count()
        self._ping_wake = trio.Event()

    # -- the handle other actors use ---------------------------------------------------

    async def send(self, msg: EnvMessage) -> None:
        await self._send.send(msg)

    async def attach(self, conn: StreamConn) -> None:
        await self._send.send(Attach(conn))

    def detach_nowait(self, conn: StreamConn) -> None:
        """``conn`` has closed: free what it held (its context group) now rather than at the
        next heartbeat. Overflow policy: with the inbox full (or the actor gone) the
        heartbeat's prune frees it instead, so a closing stream never waits."""
        with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError,
                                 trio.BrokenResourceError):
            self._send.send_nowait(Detach(conn))

    def view(self) -> EnvView:
        """The current revision (read-only), for polling requests."""
        return self.state.view()

    def eval_model(self) -> EvalModel:
        """The parsed items at the current revision (created on first use), for evaluation."""
        if self._model is None:
            self._model = EvalModel()
        if self._groups is None or not len(self._groups):
            self._model.sync(self.state.view())  # with groups the actor keeps it in sync
        return self._model

    @property
    def client_groups(self) -> ClientGroups[ClientSideConn] | None:
        return self._groups

    def connections(self) -> list[StreamConn]:
        """The attached connections that are still open."""
        return [c for subs in self._subs.values() for c in subs if c.state is not CLOSED]

    # -- the actor ------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[EnvActor] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve the inbox until :class:`Close`, inside the containment boundary.

        Failure policy: restart in place. An exception from a message, the heartbeat ticker or
        the pinger ends that round only: it is recorded (``actor="environment"``), every
        stream is closed with reason ``env_failed`` (SDKs reconnect and get a fresh ``put``),
        the derived client-side caches are dropped (rebuilt on demand), and after a backoff
        (doubling from ``RESTART_BACKOFF_MIN_S`` to ``RESTART_BACKOFF_MAX_S``, reset by a round
        that lasted ``RESTART_RESET_S``) the actor reads its inbox again. The inbox and the
        replicated state are kept, so the directory's handle stays valid; the message whose
        handling failed is not retried. While it backs off, senders wait (the inbox's
        backpressure), which is why the backoff stays short.
        """
        failures = self._counters.failures
        backoff = RESTART_BACKOFF_MIN_S
        started = False

        def ready() -> None:
            nonlocal started
            if not started:
                started = True
                task_status.started(self)

        try:
            async with self._inbox:
                while True:
                    began = trio.current_time()
                    with failures.contain("environment", self.env_key) as outcome:
                        await self._serve(ready)
                    if outcome.error is None:
                        return  # closed on purpose
                    self._close_all("env_failed")
                    self._model, self._groups = None, None
                    self._ping_heap.clear()
                    self._ping_pending.clear()
                    if trio.current_time() - began >= RESTART_RESET_S:
                        backoff = RESTART_BACKOFF_MIN_S
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, RESTART_BACKOFF_MAX_S)
        finally:
            self._close_all("env_removed")

    async def _serve(self, ready: Callable[[], None]) -> None:
        """One round of the actor: returns on :class:`Close`, raises on a failure."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._tick)
            nursery.start_soon(self._pinger)
            ready()
            async for msg in self._inbox:
                match msg:
                    case Apply(items):
                        deltas = self.state.apply(items)
                        self._deliver(deltas)
                        if deltas:
                            self._client_change(resync=False)
                    case Replace(items):
                        result = self.state.replace(items)
                        if result.needs_put:
                            self._fanout_put()
                        else:
                            self._deliver(result.deltas)
                        if result.needs_put or result.deltas:
                            self._client_change(resync=result.needs_put)
                    case Attach(conn):
                        self._attach(conn)
                    case Detach(conn):
                        self._detach(conn)
                    case Close(reason):
                        self._close_all(reason)
                        break
            nursery.cancel_scope.cancel()

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

    def _client_change(self, *, resync: bool) -> None:
        """After a change: client-side groups and ping streams (no cost when there are none)."""
        if self._groups is not None and len(self._groups):
            assert self._model is not None
            changed = self._model.sync(self.state.view())
            if resync:
                changed = Changed(changed.flags, changed.segments, everything=True)
            for conns, frames in self._groups.on_change(changed, self._evaluation_failed):
                self._fanout(conns, frames)
        if self._subs[StreamKind.PING] or self._subs[StreamKind.MPING]:
            self._schedule_pings()

    def _evaluation_failed(self, conns: set[ClientSideConn], exc: Exception) -> None:
        """The containment boundary of one group's evaluation: the group is gone (removed by
        :meth:`ClientGroups.on_change`), its streams close, the other groups go on."""
        failures = self._counters.failures
        failures.record("evaluation", exc, failures.now(), self.env_key)
        for conn in conns:
            conn.request_close("evaluation_failed")
            self._subs[conn.kind].discard(conn)

    def _schedule_pings(self) -> None:
        now, jitter = trio.current_time(), self._ping_jitter
        for kind in PING_KINDS:
            for conn in self._subs[kind]:
                if conn in self._ping_pending or conn.state is CLOSED:
                    continue  # one pending ping covers every change until it is sent
                self._ping_pending.add(conn)
                due = now + (random.uniform(jitter / 2, jitter) if jitter > 0 else 0.0)
                heapq.heappush(self._ping_heap, (due, next(self._ping_seq), conn))
        self._ping_wake.set()

    async def _pinger(self) -> None:
        heap = self._ping_heap
        while True:
            if not heap or heap[0][0] > trio.current_time():
                with trio.move_on_at(heap[0][0] if heap else float("inf")):
                    await self._ping_wake.wait()
                self._ping_wake = trio.Event()
                continue
            now, due_now = trio.current_time(), set()
            while heap and heap[0][0] <= now:
                conn = heapq.heappop(heap)[2]
                self._ping_pending.discard(conn)
                due_now.add(conn)
            self._fanout(due_now, [(_PING_KEY, PING_FRAME)])

    def _fanout_put(self) -> None:
        view = self.state.view()
        for kind, frame in ((StreamKind.ALL, view.put_all_frame),
                            (StreamKind.FLAGS, view.put_flags_frame)):
            self._fanout(self._subs[kind], [(PUT_KEY, frame)])

    def _fanout(self, subs: set[ConnT], frames: Frames) -> None:
        """Write ``frames`` to every stream in ``subs`` (the hot loop:
        streamer/fastpath/fanout.py)."""
        fan_out(subs, frames, self._counters, self._put_for)

    def _put_for(self, conn: StreamConn) -> bytes:
        """The frame that replaces a connection's whole state: its kind's current ``put``."""
        if isinstance(conn, ClientSideConn):
            if conn.group is None:
                return PING_FRAME
            groups = self._groups
            put = None if groups is None else groups.put_frame(conn.group)
            return PING_FRAME if put is None else put  # no group left: the SDK re-polls
        view = self.state.view()
        return view.put_all_frame if conn.kind is StreamKind.ALL else view.put_flags_frame

    def _attach(self, conn: StreamConn) -> None:
        if conn.state is CLOSED:
            return
        head = STREAM_RESPONSE_HEAD
        if isinstance(conn, ClientSideConn):
            head = conn.head
            if conn.group is not None:
                assert conn.context is not None
                if self._groups is None:
                    self._groups = ClientGroups(self.eval_model(),
                                                max_warm=self._max_warm_groups)
                elif not len(self._groups):
                    self.eval_model()  # not kept in sync while there was no group
                with self._counters.failures.contain("evaluation", self.env_key) as outcome:
                    self._groups.add(conn.group, conn.context, conn)
                    put = self._put_for(conn)
                if outcome.error is not None:  # this context alone: its stream closes
                    conn.request_close("evaluation_failed")
                    return
            else:
                put = PING_FRAME  # Relay pings on connect when it has data: the SDK polls
        else:
            put = self._put_for(conn)
        head += retry_chunk(random.random())
        self._subs[conn.kind].add(conn)
        try:
            sent = conn.sock.sendmsg([head, put])
        except BlockingIOError:
            sent = 0
        except OSError:
            self._subs[conn.kind].discard(conn)
            conn.request_close("reset")
            return
        if sent < len(head) + len(put):
            enter_slow(conn, [(_HEAD_KEY, head), (PUT_KEY, put)], sent, self._counters,
                       self._put_for)

    def _detach(self, conn: StreamConn) -> None:
        self._subs[conn.kind].discard(conn)
        if isinstance(conn, ClientSideConn) and conn.group is not None and self._groups is not None:
            self._groups.remove(conn.group, conn)

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
                for conn in [c for c in subs if c.state is CLOSED]:
                    subs.discard(conn)
                self._fanout(subs, [(HEARTBEAT_KEY, HEARTBEAT_CHUNK)])
            if self._groups is not None:
                self._groups.prune(lambda c: c.state is CLOSED)
                if self._groups.freed != self._freed_at_trim:  # groups went since the last tick
                    self._freed_at_trim = self._groups.freed
                    release_free_memory()
