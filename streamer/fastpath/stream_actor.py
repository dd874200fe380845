"""One SSE stream connection: handshake, lifetime, disconnect detection and the slow path.

Theory of operation
-------------------
The acceptor hands every accepted stdlib socket (non-blocking) to a :class:`StreamActor`. The
actor reads the request head (size limit, deadline: :mod:`streamer.fastpath.stream_request`), routes
it, waits while the worker has no data yet, finds the environment and creates the
:class:`~streamer.fastpath.stream_conn.StreamConn` record, asks the worker's stream gate, then
*attaches* it to the environment actor, which sends the response head and the ``put`` and
from then on writes every frame straight to ``conn.sock`` in its fan-out loop. This actor is
not woken on that path; how the two share the record is told in
:mod:`streamer.fastpath.stream_conn`.

A stream is one task: it sleeps until the peer closes (``recv() == b""``) or the environment
actor wakes it for the slow path. The environment actor (or the stream gate) can end it too:
``StreamConn.request_close`` sets ``close_reason`` and cancels the wait the task is in, and
the task checks ``close_reason`` around every wait. Only an optional max connection age gives
the stream a cancel scope of its own (its deadline): without one, an accepted stream enters
one scope fewer, which on a 2-vCPU VM is about 10 µs of the 300 µs an accept costs.

Containment (:mod:`store.containment`): :meth:`StreamActor.run` is the boundary of one
connection. An exception from anything it calls ends this connection alone: before anything
was sent the peer gets 400 (bad input) or 503 with ``Retry-After``, afterwards the socket is
closed (close reason ``failed``); it is counted as ``actor="client"`` (the metric's label
value, kept as it was).
"""

from __future__ import annotations

import contextlib
import random
import socket

import trio

from store.containment import RETRY_AFTER_S, answer_for
from streamer.clientside.client_streams import (
    ClientStreamRequest,
    Preflight,
    preflight_response,
    resolve,
    unknown_credential,
)
from streamer.fastpath.http_head import ErrorAnswer, StreamRoute, error_response
from streamer.fastpath.mailbox import Mailbox
from streamer.fastpath.sse import END_OF_BODY
from streamer.fastpath.stream_conn import CLOSED, FAST, SLOW, ClientSideConn, StreamConn
from streamer.fastpath.stream_limits import StreamLimits
from streamer.fastpath.stream_ports import EnvLink, StreamDirectory
from streamer.fastpath.stream_request import peer_address, read_request, send_all
from streamer.fastpath.worker_counters import WorkerCounters

FAILURE_LABEL = "client"  # flagstream_actor_failures{actor=...}: a public metric label


class StreamActor:
    def __init__(
        self,
        sock: socket.socket,
        directory: StreamDirectory,
        counters: WorkerCounters,
        limits: StreamLimits,
    ) -> None:
        self._sock = sock
        self._directory = directory
        self._counters = counters
        self._limits = limits
        self._responded = False  # an answer (or the stream's head) may have been sent

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the connection inside the containment boundary: whatever this connection
        raises ends this connection only. Before anything was sent, the peer gets the
        boundary's answer (400 for bad input, else 503 with ``Retry-After``); after, the
        socket is closed and the SDK reconnects."""
        task_status.started()
        try:
            with self._counters.failures.contain(FAILURE_LABEL) as outcome:
                await self._handle()
            if outcome.error is not None and not self._responded:
                status, message = answer_for(outcome.error)
                self._counters.rejected(status)
                await self._answer(ErrorAnswer(status, message),
                                   retry_after=RETRY_AFTER_S if status == 503 else None)
        finally:
            self._sock.close()

    async def _handle(self) -> None:
        got = await read_request(self._sock, self._limits)
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
            await self._serve_client_side(route, body)

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
        conn = StreamConn(self._sock, route.kind, link.env_key,
                          Mailbox(limits.mailbox_items, limits.mailbox_bytes))
        await self._run_conn(link, conn, route.credential)

    async def _serve_client_side(self, req: ClientStreamRequest, body: bytes | None) -> None:
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
        conn = ClientSideConn(self._sock, req.kind, link.env_key,
                              Mailbox(limits.mailbox_items, limits.mailbox_bytes),
                              head=target.head, group=target.group, context=target.context)
        await self._run_conn(link, conn, req.credential)

    async def _run_conn(self, link: EnvLink, conn: StreamConn, credential: str) -> None:
        limits = self._limits
        # The worker's stream gate (streamer/fastpath/stream_gate.py): admission control, per-key
        # and per-address limits, closing streams on rotated keys, and the spread-out drain.
        gate = self._directory.gate
        refusal = gate.enter(conn, credential, peer_address(self._sock), conn.env_key)
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
                if conn.state is FAST:
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
            gate.leave(conn)

    async def _attached(self, link: EnvLink, conn: StreamConn) -> None:
        self._responded = True  # the environment actor sends the head from here on
        try:
            await link.attach(conn)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            conn.close_reason = "env_removed"
            return
        await self._live(conn)

    async def _live(self, conn: StreamConn) -> None:
        """Watch the peer and serve the slow path, in this one task.

        On the common path the task sleeps in ``wait_readable`` (an SDK never sends anything
        on a stream, so readable means closed or reset). When the environment actor puts the
        stream into SLOW, it cancels ``conn.wait``; the task then drains the mailbox and goes
        back to sleep. No nursery and no second task per stream: they were most of the Python
        cost of accepting a connection.
        """
        sock = conn.sock
        while True:
            if conn.closing():
                return
            if conn.state is SLOW:
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
                data = sock.recv(4096)  # anything a peer sends on a stream is ignored
            except BlockingIOError:
                continue
            except OSError:
                conn.request_close("reset")
                return
            if not data:
                conn.request_close("client_closed")
                return

    async def _drain(self, conn: StreamConn) -> bool:
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
        self._responded = True
        await send_all(self._sock, response)
