"""The stream listener's accept loop.

Theory of operation
-------------------
The listening socket is a plain non-blocking stdlib socket (from
:mod:`streamer.fastpath.reuseport`).
:class:`Acceptor` waits for it to become readable with ``trio.lowlevel.wait_readable`` and then
calls ``accept()`` until ``EAGAIN`` (at most ``batch`` per wakeup, so handshakes get their turn),
handing each new socket to a :class:`~streamer.fastpath.stream_actor.StreamActor` started in the
acceptor's own nursery, which therefore owns every connection of the listener. Sockets stay
stdlib sockets for their whole life: trio's public ``wait_readable``/``wait_writable`` accept
them, and the environment actor's fan-out can call their C ``send()`` directly, with no wrapper
object in between (the cheapest correct way to reach the raw socket; no private attribute).

**Shedding at accept.** While the worker's stream gate would refuse every new stream (it is
draining, at ``--max-connections``, or saturated: see :mod:`streamer.fastpath.stream_gate`), a
connection whose request is already in its socket is answered right here: one ``recv`` takes
the request, one ``send`` the gate's 503 with its jittered ``Retry-After``, then the socket is
closed (FIN, since nothing is left unread). No actor, no head parse, no cancel scope: a 503 then
costs a small part of what an admitted stream costs, which is what makes shedding worth doing
in a reconnect herd (a 503 that cost as much as an admission only moved the work later). A
connection whose request has not arrived yet goes to a :class:`StreamActor` as usual, which
reads it under the head deadline and asks the gate again.

Connections that have not sent their request head yet hold a file descriptor as much as a
stream does, so they count toward the worker's ``max_connections`` (which the open-file limit
caps): the acceptor counts every connection it has handed to an actor until that actor ends
(``held``) and asks the gate with it. A connection that arrives when ``held`` is at the limit
and whose request is not there yet still deserves its 503 (an SDK reads ``Retry-After``; a bare
close looks like a network fault): it waits for its request in a small, bounded refusal pool
(:data:`LATE_REFUSALS` places, :data:`LATE_REFUSAL_WAIT_S` at most), which answers it with the
gate's 503. Overflow policy: while the pool is full the acceptor stops accepting until a
place in it frees (at most :data:`LATE_REFUSAL_WAIT_S`), and counts the pause
(``pool_pauses``): the next connections wait in the kernel's listen backlog (bounded by the
listener's ``backlog``; beyond it the kernel drops the handshake and the client retries it), and
when they are accepted their request is usually there already, so they get their 503 at once.
Closing them instead looked like a network fault to a client in a reconnect herd, which is
exactly when the pool fills. Idle connections therefore hold at most ``max_connections`` plus
the pool's places, never the whole open-file table; one that sends nothing in the pool is
closed and counted (``closed_idle``). The head itself has a deadline
(``StreamLimits.header_timeout``), after which its actor ends and frees its place.

When the process runs out of file descriptors or memory anyway, accept fails with one of
:data:`ACCEPT_CAPACITY_ERRNOS`; the loop logs that once per episode and backs off 100 ms
(as ``trio.serve_listeners`` does) instead of spinning. An error that belongs to one pending
connection (:data:`ACCEPT_CONNECTION_ERRNOS`, e.g. it was reset while queued) skips that
connection. Any other accept error is logged and backed off as well: no accept error ends the
worker and every stream it holds.

After each batch of accepts the acceptor tells the worker's GC policy how many it took
(:class:`streamer.fastpath.gc_policy.GcPolicy`, a constructor argument), so it can freeze the
survivors.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import socket
from typing import Protocol

import trio

from streamer.fastpath.gc_policy import GcPolicy
from streamer.fastpath.http_head import ErrorAnswer, error_response
from streamer.fastpath.stream_actor import StreamActor
from streamer.fastpath.stream_gate import GateLimits, Refusal
from streamer.fastpath.stream_limits import StreamLimits
from streamer.fastpath.stream_ports import StreamAdmission, StreamDirectory
from streamer.fastpath.worker_counters import WorkerCounters

log = logging.getLogger(__name__)

ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
# Errors of one queued connection that Linux reports from accept() itself (accept(2)): that
# connection is gone; the next one is fine.
ACCEPT_CONNECTION_ERRNOS = frozenset(
    getattr(errno, name) for name in (
        "ECONNABORTED", "ECONNRESET", "EPROTO", "EPERM", "ETIMEDOUT", "ENETDOWN", "ENETUNREACH",
        "EHOSTDOWN", "EHOSTUNREACH", "ENONET", "ENOPROTOOPT", "EOPNOTSUPP")
    if hasattr(errno, name))
LATE_REFUSALS = 64  # connections at the limit waiting for their request to get the 503
LATE_REFUSAL_WAIT_S = 1.0  # how long one of them may take to send it


class SheddingGate(StreamAdmission, Protocol):
    """The stream gate, as the acceptor sees it: whether it refuses everyone now."""

    @property
    def limits(self) -> GateLimits: ...

    def __len__(self) -> int: ...

    def refusal_for_all(self, *, held: int = 0) -> Refusal | None: ...

    def count_refusal(self, refusal: Refusal) -> None: ...


class AcceptorDirectory(StreamDirectory, Protocol):
    """The worker's directory, as the acceptor sees it (its gate can shed)."""

    @property
    def gate(self) -> SheddingGate: ...


class Acceptor:
    def __init__(
        self,
        listener: socket.socket,
        directory: AcceptorDirectory,
        counters: WorkerCounters,
        limits: StreamLimits | None = None,
        *,
        gc_policy: GcPolicy | None = None,
        batch: int = 256,
    ) -> None:
        self._listener = listener
        self._directory = directory
        self._counters = counters
        self._limits = limits or StreamLimits()
        self._gc = gc_policy
        self._batch = batch
        self._gate = directory.gate
        self.held = 0  # connections with an actor: streams and heads still on their way
        self.closed_idle = 0  # connections closed at the limit before sending a request
        self.late_refusals = 0  # connections in the refusal pool now (at most LATE_REFUSALS)
        self.pool_pauses = 0  # times accepting paused because the refusal pool was full
        self._pool_room = trio.Event()  # set when a place in the refusal pool frees

    async def run(
        self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept until cancelled; cancelling also ends every connection it accepted."""
        listener = self._listener
        listener.setblocking(False)
        capacity_episode = False
        async with trio.open_nursery() as connections:
            task_status.started(listener.getsockname()[:2])
            while True:
                await trio.lowlevel.wait_readable(listener)
                taken = 0
                drained = False
                while taken < self._batch:
                    if self.late_refusals >= LATE_REFUSALS:
                        await self._wait_for_pool_room()
                    try:
                        sock, _ = listener.accept()
                    except BlockingIOError:
                        drained = True
                        break
                    except OSError as exc:
                        if exc.errno in ACCEPT_CONNECTION_ERRNOS:
                            continue
                        if not capacity_episode:
                            log.error("accept failed (%s); backing off",
                                      errno.errorcode.get(exc.errno or 0, exc))
                            capacity_episode = True
                        await trio.sleep(0.1)
                        break
                    capacity_episode = False
                    taken += 1  # a herd of 503s and closes counts toward the batch too
                    try:
                        sock.setblocking(False)
                        if self._refused(sock, connections):
                            continue
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    except OSError:  # the peer is gone already
                        sock.close()
                        continue
                    actor = StreamActor(sock, self._directory, self._counters, self._limits)
                    self.held += 1
                    connections.start_soon(self._hold, actor)
                self._counters.accepted += taken
                if self._gc is not None:
                    self._gc.after_accepts(taken, drained=drained)

    async def _wait_for_pool_room(self) -> None:
        """The refusal pool's overflow policy: accept nothing until one of its places frees;
        the connections behind wait in the listen backlog."""
        self.pool_pauses += 1
        while self.late_refusals >= LATE_REFUSALS:
            self._pool_room = trio.Event()
            await self._pool_room.wait()

    async def _hold(self, actor: StreamActor) -> None:
        try:
            await actor.run()
        finally:
            self.held -= 1

    def _refused(self, sock: socket.socket, pool: trio.Nursery) -> bool:
        """True if ``sock`` was answered or closed here because the gate refuses everyone now;
        False: hand it to an actor."""
        gate = self._gate
        if (refusal := gate.refusal_for_all(held=self.held)) is None:
            return False
        full = 0 < gate.limits.max_connections <= max(len(gate), self.held)
        return self._shed(sock, gate, refusal, close_idle=full, pool=pool)

    def _shed(self, sock: socket.socket, gate: SheddingGate, refusal: Refusal, *,
              close_idle: bool, pool: trio.Nursery) -> bool:
        """Answer ``sock`` with ``refusal`` if its request is already here. If not and every
        place is taken (``close_idle``, head-waiting ones included): let the refusal pool answer
        it (the accept loop keeps a place free for it) and return True; otherwise return False
        to hand the connection to an actor as usual."""
        try:
            request = sock.recv(65536)
        except BlockingIOError:
            if not close_idle:
                return False  # the actor waits for the request under the head deadline
            self.late_refusals += 1
            pool.start_soon(self._refuse_late, sock, gate, refusal)
            return True
        except OSError:
            request = b""
        self._answer(sock, request, gate, refusal)
        return True

    async def _refuse_late(self, sock: socket.socket, gate: SheddingGate,
                           refusal: Refusal) -> None:
        """The refusal pool: wait a little for the request, then answer it with the 503."""
        request = b""
        try:
            with trio.move_on_after(LATE_REFUSAL_WAIT_S):
                await trio.lowlevel.wait_readable(sock)
                with contextlib.suppress(OSError):
                    request = sock.recv(65536)
            if not request:
                self.closed_idle += 1
            self._answer(sock, request, gate, refusal)
        finally:
            self.late_refusals -= 1
            self._pool_room.set()
            sock.close()

    def _answer(self, sock: socket.socket, request: bytes, gate: SheddingGate,
                refusal: Refusal) -> None:
        if request:  # a head cut over segments gets the 503 all the same; its rest, an RST
            gate.count_refusal(refusal)
            self._counters.rejected(refusal.status)
            with contextlib.suppress(OSError):  # a peer gone already needs no answer
                sock.send(_refusal_bytes(refusal.status, refusal.message, refusal.retry_after))
        sock.close()


@functools.lru_cache(maxsize=64)  # a few messages times a few Retry-After values
def _refusal_bytes(status: int, message: str, retry_after: int) -> bytes:
    return error_response(ErrorAnswer(status, message), retry_after=retry_after)
