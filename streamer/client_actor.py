"""One SSE connection: handshake, lifetime, disconnect detection and the slow path.

Theory of operation
-------------------
The acceptor hands every accepted stdlib socket (non-blocking) to a :class:`ClientActor`. The
actor reads the request head (size limit, deadline), routes it, waits while the worker has no
data yet, finds the environment and creates the :class:`Conn` record, then *attaches* it to the
environment actor, which sends the response head and the ``put`` and from then on writes every
frame straight to ``conn.sock`` in its fan-out loop. This actor is not woken on that path.

The :class:`Conn` is the only thing the two actors share, and it works like a channel:

* ``state`` FAST: the environment actor may ``send()`` directly.
* ``state`` SLOW: a send would have blocked. The environment actor stores the unsent remainder
  and later frames in ``conn.mailbox`` (bounded, coalescing, see :class:`Mailbox`) and cancels
  ``conn.wait``, the scope this actor sleeps in; the actor drains the mailbox as the socket
  becomes writable and sets FAST again once it is empty, so per-client order is kept.
* ``state`` CLOSED: set by this actor on exit; the environment actor drops the record lazily.

A connection is one task: it sleeps until the peer closes (``recv() == b""``) or the
environment actor wakes it for the slow path. The environment actor (or the stream gate) can
end it too: ``Conn.request_close`` sets ``close_reason`` and cancels the wait the task is in,
and the task checks ``close_reason`` around every wait. Only an optional max connection age
gives the stream a cancel scope of its own (its deadline): without one, an accepted stream
enters one scope fewer, which on a 2-vCPU VM is about 10 µs of the 300 µs an accept costs.

Containment (:mod:`store.containment`): :meth:`ClientActor.run` is the boundary of one
connection. An exception from anything it calls ends this connection alone: before anything
was sent the client gets 400 (bad input) or 503 with ``Retry-After``, afterwards the socket is
closed (close reason ``failed``); it is counted as ``actor="client"``.
"""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import trio

from flagmodel import Context
from store.bus.envelope import EnvironmentInfo
from store.containment import RETRY_AFTER_S, Failures, answer_for
from streamer.client_groups import GroupKey
from streamer.client_streams import (
    MAX_BODY_BYTES,
    ClientStreamRequest,
    Preflight,
    preflight_response,
    resolve,
    route_any,
    unknown_credential,
)
from streamer.http_head import (
    STREAM_RESPONSE_HEAD,
    ErrorAnswer,
    HeadError,
    HeadReader,
    StreamKind,
    StreamRoute,
    error_response,
)
from streamer.sse import END_OF_BODY

T = TypeVar("T")
FAST, SLOW, CLOSED = 0, 1, 2
PUT_KEY = ("", "put")
HEARTBEAT_KEY = ("", "heartbeat")


class Mailbox:
    """A slow client's backlog (pure): the unsent remainder of one frame, then queued frames.

    Frames are queued under a coalescing key ((kind, key) for an item, :data:`PUT_KEY`,
    :data:`HEARTBEAT_KEY`); a newer frame for a key replaces the older one and moves to the
    end. That reordering is safe because items are independent and versioned. A ``put``
    replaces the whole queue. The bound counts queued frames other than the put (whose bytes
    are shared with every other client): :meth:`push` returns False once it is exceeded, and
    the caller applies the overflow policy (replace the backlog with a fresh put).
    """

    __slots__ = ("_bytes", "_queue", "inflight", "max_bytes", "max_items")

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.inflight: memoryview | None = None
        self._queue: dict[tuple[str, str], bytes] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._queue) + (self.inflight is not None)

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    @property
    def has_queued_put(self) -> bool:
        return PUT_KEY in self._queue

    def set_inflight(self, remainder: bytes | memoryview) -> None:
        self.inflight = memoryview(remainder) if remainder else None

    def push(self, key: tuple[str, str], frame: bytes) -> bool:
        old = self._queue.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._queue[key] = frame
        self._bytes += len(frame)
        items = len(self._queue) - (PUT_KEY in self._queue)
        return items <= self.max_items and self._bytes <= self.max_bytes

    def push_heartbeat(self, frame: bytes) -> None:
        if not self._queue and self.inflight is None:
            self._queue[HEARTBEAT_KEY] = frame  # any queued frame already keeps the link alive

    def reset_to_put(self, put_frame: bytes) -> None:
        self._queue.clear()
        self._queue[PUT_KEY] = put_frame
        self._bytes = 0

    def next_chunk(self) -> memoryview | None:
        if self.inflight is None and self._queue:
            key = next(iter(self._queue))
            frame = self._queue.pop(key)
            if key != PUT_KEY:
                self._bytes -= len(frame)
            self.inflight = memoryview(frame)
        return self.inflight

    def consumed(self, sent: int) -> None:
        assert self.inflight is not None
        rest = self.inflight[sent:]
        self.inflight = rest if len(rest) else None


@dataclass(frozen=True, slots=True)
class StreamStatistics:
    connections: dict[tuple[str, str], int]  # open streams by (environment, kind)
    new_connections: dict[tuple[str, str], int]  # cumulative
    disconnects: dict[str, int]  # by reason
    rejected: dict[int, int]  # error answers on the stream listener, by status
    polls: dict[int, int]  # polling answers on the SDK listener, by status
    accepted: int
    slow_entries: int
    slow_resyncs: int
    fanouts: int
    fanout_sends: int  # sum of the clients reached by every fan-out
    fanout_wall_ns: int
    fanout_cpu_ns: int
    fanout_max_wall_ns: int
    heartbeats: int
    failures: dict[tuple[str, str], int]  # contained failures by (actor, reason)


class StreamCounters:
    """The worker's stream counters; every actor of one worker adds to the same instance."""

    def __init__(self) -> None:
        self.connections: dict[tuple[str, str], int] = {}
        self.new_connections: dict[tuple[str, str], int] = {}
        self.disconnects: dict[str, int] = {}
        self.rejects: dict[int, int] = {}
        self.polls: dict[int, int] = {}
        self.accepted = 0
        self.slow_entries = 0
        self.slow_resyncs = 0
        self.fanouts = 0
        self.fanout_sends = 0
        self.fanout_wall_ns = 0
        self.fanout_cpu_ns = 0
        self.fanout_max_wall_ns = 0
        self.heartbeats = 0
        # Containment (store/containment.py): every actor of the worker records its failures
        # here; /metrics reads it as flagstream_actor_failures_total.
        self.failures = Failures(clock=trio.current_time)  # every caller runs under trio

    def opened(self, env: str, kind: str) -> None:
        k = (env, kind)
        self.connections[k] = self.connections.get(k, 0) + 1
        self.new_connections[k] = self.new_connections.get(k, 0) + 1

    def closed(self, env: str, kind: str, reason: str) -> None:
        k = (env, kind)
        self.connections[k] = self.connections.get(k, 0) - 1
        self.disconnects[reason] = self.disconnects.get(reason, 0) + 1

    def rejected(self, status: int) -> None:
        self.rejects[status] = self.rejects.get(status, 0) + 1

    def polled(self, status: int) -> None:
        self.polls[status] = self.polls.get(status, 0) + 1

    def fanned_out(self, clients: int, wall_ns: int, cpu_ns: int) -> None:
        self.fanouts += 1
        self.fanout_sends += clients
        self.fanout_wall_ns += wall_ns
        self.fanout_cpu_ns += cpu_ns
        self.fanout_max_wall_ns = max(self.fanout_max_wall_ns, wall_ns)

    def statistics(self) -> StreamStatistics:
        return StreamStatistics(
            dict(self.connections), dict(self.new_connections), dict(self.disconnects),
            dict(self.rejects), dict(self.polls), self.accepted, self.slow_entries,
            self.slow_resyncs, self.fanouts, self.fanout_sends, self.fanout_wall_ns,
            self.fanout_cpu_ns, self.fanout_max_wall_ns, self.heartbeats,
            self.failures.counts(),
        )


class Conn:
    """The record of one attached stream, shared by its client actor and environment actor."""

    __slots__ = ("close_reason", "env_key", "kind", "mailbox", "scope", "sock", "state", "wait")

    def __init__(
        self, sock: socket.socket, kind: StreamKind, env_key: str, mailbox: Mailbox
    ) -> None:
        self.sock = sock
        self.kind = kind
        self.env_key = env_key
        self.mailbox = mailbox
        self.state = FAST
        self.wait: trio.CancelScope | None = None  # the scope the client actor waits in
        self.scope: trio.CancelScope | None = None  # the whole stream's, with max_age only
        self.close_reason: str | None = None

    def closing(self) -> bool:
        """Asked to close (a call, so a type checker does not narrow it across an await)."""
        return self.close_reason is not None

    def enter_slow(self) -> None:
        self.state = SLOW
        if self.wait is not None:
            self.wait.cancel()

    def request_close(self, reason: str) -> None:
        """Ask the client actor to end the connection (called by the environment actor).

        The client actor checks ``close_reason`` before and after each wait; cancelling the
        wait it is in (``wait``: idle, or the slow path's) wakes it at once.
        """
        if self.close_reason is None:
            self.close_reason = reason
        if self.scope is not None:
            self.scope.cancel()
        if self.wait is not None:
            self.wait.cancel()


class ClientConn(Conn):
    """An attached client-side stream: its own response head (CORS) and its group."""

    __slots__ = ("context", "group", "head")

    def __init__(self, sock: socket.socket, kind: StreamKind, env_key: str, mailbox: Mailbox,
                 *, head: bytes = STREAM_RESPONSE_HEAD, group: GroupKey | None = None,
                 context: Context | None = None) -> None:
        super().__init__(sock, kind, env_key, mailbox)
        self.head = head
        self.group = group  # None: a ping stream
        self.context = context


class EnvLink(Protocol):
    env_key: str

    async def attach(self, conn: Conn) -> None: ...

    def detach_nowait(self, conn: Conn) -> None: ...


class StreamDirectory(Protocol):
    @property
    def loaded(self) -> bool: ...

    async def wait_loaded(self) -> None: ...

    def stream_target(self, credential: str) -> EnvLink | None: ...

    async def await_known(self, find: Callable[[], T | None]) -> T | None: ...

    def client_stream_target(
        self, kind: StreamKind, credential: str
    ) -> tuple[EnvLink, EnvironmentInfo] | None: ...


@dataclass(frozen=True, slots=True)
class ClientLimits:
    header_timeout: float = 10.0  # seconds to receive a complete request head
    max_head_bytes: int = 16 * 1024
    unloaded_hold: float = 60.0  # how long a stream waits for the worker's first data; then 503
    max_age: float | None = None  # optional max connection age (seconds), jittered down by 25 %
    stall_timeout: float = 60.0  # a slow client whose socket takes no byte this long is dropped
    mailbox_items: int = 256
    mailbox_bytes: int = 4 * 1024 * 1024


class _HeadTimeout(Exception):
    """The request head (or a REPORT's body) did not arrive within ``header_timeout``."""


class ClientActor:
    def __init__(
        self,
        sock: socket.socket,
        directory: StreamDirectory,
        counters: StreamCounters,
        limits: ClientLimits,
    ) -> None:
        self._sock = sock
        self._directory = directory
        self._counters = counters
        self._limits = limits
        self._responded = False  # an answer (or the stream's head) may have been sent

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the connection inside the containment boundary: whatever this connection
        raises ends this connection only. Before anything was sent, the client gets the
        boundary's answer (400 for bad input, else 503 with ``Retry-After``); after, the
        socket is closed and the SDK reconnects."""
        task_status.started()
        try:
            with self._counters.failures.contain("client") as outcome:
                await self._handle()
            if outcome.error is not None and not self._responded:
                status, message = answer_for(outcome.error)
                self._counters.rejected(status)
                await self._answer(ErrorAnswer(status, message),
                                   retry_after=RETRY_AFTER_S if status == 503 else None)
        finally:
            self._sock.close()

    async def _handle(self) -> None:
        got = await self._read_request()
        if isinstance(got, ErrorAnswer):
            self._counters.rejected(got.status)
            await self._answer(got)
            return
        if isinstance(got, Preflight):
            await self._send_all(preflight_response(got))
            return
        if got is None:
            return
        route, body = got
        if isinstance(route, StreamRoute):
            await self._serve(route)
        else:
            await self._serve_client(route, body)

    async def _read_request(self) -> (
            tuple[StreamRoute | ClientStreamRequest, bytes | None] | Preflight | ErrorAnswer
            | None):
        """The routed request (and a REPORT's body), all within ``header_timeout``."""
        reader = HeadReader(max_head_bytes=self._limits.max_head_bytes)
        deadline = trio.current_time() + self._limits.header_timeout
        try:
            route = await self._read_route(reader, deadline)
            if route is None or isinstance(route, ErrorAnswer | Preflight):
                return route
            if not isinstance(route, ClientStreamRequest) or not route.report:
                return route, None
            try:
                body = reader.feed_body(None, max_bytes=MAX_BODY_BYTES)
                while body is None:
                    data = await self._recv_some(deadline)
                    if data is None:
                        return None
                    body = reader.feed_body(data, max_bytes=MAX_BODY_BYTES)
            except HeadError as exc:
                return exc.answer
            return route, body
        except _HeadTimeout:
            return ErrorAnswer(408, "request not received in time")

    async def _recv_some(self, deadline: float) -> bytes | None:
        """Bytes from the socket (``b""`` at EOF); None when it failed.

        The deadline's cancel scope is entered only to wait: a head that is already there
        (the common case, since a client writes it right after connecting and an accept burst
        finds it waiting) is read with no scope at all.
        """
        while True:
            try:
                return self._sock.recv(65536)
            except BlockingIOError:
                with trio.move_on_at(deadline) as waited:
                    await trio.lowlevel.wait_readable(self._sock)
                if waited.cancelled_caught:
                    raise _HeadTimeout from None
            except OSError:
                return None

    async def _read_route(
        self, reader: HeadReader, deadline: float
    ) -> StreamRoute | ClientStreamRequest | Preflight | ErrorAnswer | None:
        received = False
        while True:
            data = await self._recv_some(deadline)
            if data is None or (not data and not received):
                return None  # failed, or connected and left without a request
            received = True
            try:
                head = reader.feed(data)
            except HeadError as exc:
                return exc.answer
            if head is not None:
                return route_any(head)

    async def _wait_loaded(self) -> bool:
        directory = self._directory
        if not directory.loaded:
            with trio.move_on_after(self._limits.unloaded_hold):
                await directory.wait_loaded()
            if not directory.loaded:
                self._counters.rejected(503)
                await self._answer(ErrorAnswer(503, "no flag data yet"), retry_after=5)
                return False
        return True

    async def _reject(self, answer: ErrorAnswer) -> None:
        self._counters.rejected(answer.status)
        await self._answer(answer)

    async def _serve(self, route: StreamRoute) -> None:
        if not await self._wait_loaded():
            return
        directory = self._directory
        link = directory.stream_target(route.credential)
        if link is None:  # maybe a key created a moment ago, still on its way over the bus
            link = await directory.await_known(
                lambda: directory.stream_target(route.credential))
        if link is None:
            await self._reject(ErrorAnswer(401, "unknown SDK key"))
            return
        limits = self._limits
        conn = Conn(self._sock, route.kind, link.env_key,
                    Mailbox(limits.mailbox_items, limits.mailbox_bytes))
        await self._run_conn(link, conn, route.credential)

    async def _serve_client(self, req: ClientStreamRequest, body: bytes | None) -> None:
        if not await self._wait_loaded():
            return
        directory = self._directory
        found = directory.client_stream_target(req.kind, req.credential)
        if found is None:  # maybe created a moment ago, still on its way over the bus
            found = await directory.await_known(
                lambda: directory.client_stream_target(req.kind, req.credential))
        if found is None:
            await self._reject(unknown_credential(req.kind))
            return
        link, env = found
        target = resolve(req, body, env)
        if isinstance(target, ErrorAnswer):
            await self._reject(target)
            return
        limits = self._limits
        conn = ClientConn(self._sock, req.kind, link.env_key,
                          Mailbox(limits.mailbox_items, limits.mailbox_bytes),
                          head=target.head, group=target.group, context=target.context)
        await self._run_conn(link, conn, req.credential)

    async def _run_conn(self, link: EnvLink, conn: Conn, credential: str) -> None:
        limits = self._limits
        # The worker's stream gate (streamer/stream_gate.py): admission control, per-key and
        # per-address limits, closing streams on rotated keys, and the spread-out drain.
        gate = getattr(self._directory, "gate", None)
        if gate is not None:
            refusal = gate.enter(conn, credential, _peer_address(self._sock), conn.env_key)
            if refusal is not None:
                self._counters.rejected(refusal.status)
                await self._answer(ErrorAnswer(refusal.status, refusal.message),
                                   retry_after=refusal.retry_after)
                return
        self._counters.opened(conn.env_key, conn.kind.value)
        reason = "shutdown"
        try:
            if limits.max_age is None:  # no scope of its own: request_close wakes its waits
                await self._attached(link, conn)
                return
            with trio.CancelScope() as scope:
                conn.scope = scope
                scope.deadline = trio.current_time() + limits.max_age * (
                    1.0 - 0.25 * random.random()
                )
                await self._attached(link, conn)
            if conn.close_reason is None and scope.cancelled_caught:
                conn.close_reason = "max_age"
                if conn.state == FAST:
                    with contextlib.suppress(OSError):
                        self._sock.send(END_OF_BODY)  # a clean end; the SDK reconnects
        except Exception:
            reason = "failed"  # the boundary in run() records why
            raise
        finally:
            conn.state = CLOSED
            link.detach_nowait(conn)  # frees what the environment actor holds for it, now
            reason = reason if reason == "failed" else conn.close_reason or reason
            self._counters.closed(conn.env_key, conn.kind.value, reason)
            if gate is not None:
                gate.leave(conn)

    async def _attached(self, link: EnvLink, conn: Conn) -> None:
        self._responded = True  # the environment actor sends the head from here on
        try:
            await link.attach(conn)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            conn.close_reason = "env_removed"
            return
        await self._live(conn)

    async def _live(self, conn: Conn) -> None:
        """Watch the peer and serve the slow path, in this one task.

        On the common path the task sleeps in ``wait_readable`` (the client never sends
        anything on a stream, so readable means closed or reset). When the environment actor
        puts the connection into SLOW, it cancels ``conn.wait``; the task then drains the
        mailbox and goes back to sleep. No nursery and no second task per connection: they
        were most of the Python cost of accepting a connection.
        """
        sock = conn.sock
        while True:
            if conn.closing():
                return
            if conn.state == SLOW:
                if not await self._drain(conn):
                    return
                continue
            with trio.CancelScope() as idle:
                conn.wait = idle
                await trio.lowlevel.wait_readable(sock)
            conn.wait = None
            if idle.cancelled_caught:
                continue  # woken: for the slow path, or to close
            try:
                data = sock.recv(4096)  # anything a client sends on a stream is ignored
            except BlockingIOError:
                continue
            except OSError:
                conn.request_close("reset")
                return
            if not data:
                conn.request_close("client_closed")
                return

    async def _drain(self, conn: Conn) -> bool:
        """The slow path: send the mailbox as the socket takes it; False once the link is gone.

        A peer that closes meanwhile makes the socket writable with an error, so ``send``
        reports it; no separate watcher is needed here.
        """
        sock, mailbox = conn.sock, conn.mailbox
        while (view := mailbox.next_chunk()) is not None:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                sent = 0
            except OSError:
                conn.request_close("reset")
                return False
            if sent:
                mailbox.consumed(sent)
                continue
            if conn.closing():
                return False
            with trio.move_on_after(self._limits.stall_timeout) as stall:
                conn.wait = stall  # request_close cancels it
                await trio.lowlevel.wait_writable(sock)
            conn.wait = None
            if conn.closing():
                return False
            if stall.cancelled_caught:
                conn.request_close("slow_client")
                return False
        conn.state = FAST
        return True

    async def _answer(self, answer: ErrorAnswer, *, retry_after: int | None = None) -> None:
        await self._send_all(error_response(answer, retry_after=retry_after))

    async def _send_all(self, response: bytes) -> None:
        """Send a complete response, then close our side gracefully."""
        self._responded = True
        data = memoryview(response)
        sock = self._sock
        with trio.move_on_after(5.0):
            while data:
                try:
                    data = data[sock.send(data):]
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(sock)
                except OSError:
                    return
            try:
                sock.shutdown(socket.SHUT_WR)
                sock.recv(65536)  # drop what is left, so close() sends FIN rather than RST
            except OSError:
                pass


def _peer_address(sock: socket.socket) -> str:
    try:
        return str(sock.getpeername()[0])
    except OSError:
        return ""
