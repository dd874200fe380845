"""A stream connection's request and its one-shot answers, on the raw socket.

:func:`read_request` reads and routes the request head (and a client-side REPORT's body)
within ``StreamLimits.header_timeout``; :func:`send_all` writes a complete answer (an error,
a CORS preflight) and closes our side gracefully. The stream actor
(:mod:`streamer.fastpath.stream_actor`)
calls both; the head parsing itself is sans-IO (:mod:`streamer.fastpath.http_head`).
"""

from __future__ import annotations

import socket

import trio

from streamer.clientside.client_streams import (
    MAX_BODY_BYTES,
    ClientStreamRequest,
    Preflight,
    route_any,
)
from streamer.fastpath.http_head import ErrorAnswer, HeadError, HeadReader, StreamRoute
from streamer.fastpath.stream_limits import StreamLimits

Request = tuple[StreamRoute | ClientStreamRequest, bytes | None]


class _HeadTimeout(Exception):
    """The request head (or a REPORT's body) did not arrive within ``header_timeout``."""


async def read_request(
    sock: socket.socket, limits: StreamLimits
) -> Request | Preflight | ErrorAnswer | None:
    """The routed request (and a REPORT's body), all within ``header_timeout``; None when the
    peer left or the socket failed."""
    reader = HeadReader(max_head_bytes=limits.max_head_bytes)
    deadline = trio.current_time() + limits.header_timeout
    try:
        route = await _read_route(sock, reader, deadline)
        if route is None or isinstance(route, ErrorAnswer | Preflight):
            return route
        if not isinstance(route, ClientStreamRequest) or not route.report:
            return route, None
        try:
            body = reader.feed_body(None, max_bytes=MAX_BODY_BYTES)
            while body is None:
                data = await _recv_some(sock, deadline)
                if data is None:
                    return None
                body = reader.feed_body(data, max_bytes=MAX_BODY_BYTES)
        except HeadError as exc:
            return exc.answer
        return route, body
    except _HeadTimeout:
        return ErrorAnswer(408, "request not received in time")


async def _recv_some(sock: socket.socket, deadline: float) -> bytes | None:
    """Bytes from the socket (``b""`` at EOF); None when it failed.

    The deadline's cancel scope is entered only to wait: a head that is already there (the
    common case, since a client writes it right after connecting and an accept burst finds it
    waiting) is read with no scope at all.
    """
    while True:
        try:
            return sock.recv(65536)
        except BlockingIOError:
            with trio.move_on_at(deadline) as waited:
                await trio.lowlevel.wait_readable(sock)
            if waited.cancelled_caught:
                raise _HeadTimeout from None
        except OSError:
            return None


async def _read_route(
    sock: socket.socket, reader: HeadReader, deadline: float
) -> StreamRoute | ClientStreamRequest | Preflight | ErrorAnswer | None:
    received = False
    while True:
        data = await _recv_some(sock, deadline)
        if data is None or (not data and not received):
            return None  # failed, or connected and left without a request
        received = True
        try:
            head = reader.feed(data)
        except HeadError as exc:
            return exc.answer
        if head is not None:
            return route_any(head)


async def send_all(sock: socket.socket, response: bytes) -> None:
    """Send a complete response, then close our side gracefully (at most 5 s)."""
    data = memoryview(response)
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


def peer_address(sock: socket.socket) -> str:
    try:
        return str(sock.getpeername()[0])
    except OSError:
        return ""
