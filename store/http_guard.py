"""An ASGI guard in front of the hypercorn apps (admin API and the SDK listener).

Theory of operation
-------------------
hypercorn (h11) already refuses oversized heads, bad framing and bad Content-Length, and
closes a connection whose head does not arrive within its keep-alive timeout. Four gaps stay,
and this wrapper closes them:

* A head that arrives in one read is parsed whatever its size, so thousands of small headers
  get through: more than ``max_headers`` (or ``max_header_bytes`` in total) is a 431.
* A body that never completes (a Content-Length that is never sent, a chunk size of 2^80, a
  sender that stops half way) would hold the handler until Quart's own body timeout, or
  forever. Every request's body must arrive within ``body_timeout`` of the head: past that,
  the app is cancelled and the client gets a 408 (or, if the answer had started, the
  connection is closed, since the unread body makes it unusable).

* A request with both ``Content-Length`` and ``Transfer-Encoding`` is framed by h11 as
  chunked and its connection kept for the next request; a proxy in front that framed it by
  the length would see a different next request (request smuggling). RFC 9112 §6.1: the server
  must close such a connection after answering. Its body is read and dropped (within the body
  deadline and ``max_discard_bytes``, so the answer is not lost to a reset) and it gets a 400
  with ``Connection: close``, which makes h11, and so hypercorn, close the connection.
* A body on a method that takes none (a GET with ``Content-Length: 5``) is never read by the
  app; when it arrives after the answer, hypercorn never starts the connection's next cycle
  and a pipelined request behind it is never answered. Such a body is read and dropped before
  the app runs (same bounds; past them a 413 or 408 that closes), and the app sees none.

After the body is complete, ``receive`` passes straight through, so long-lived streaming
answers (which wait on ``http.disconnect``) are unaffected.

A third gap sits in hypercorn's keep-alive handling and needs the app's help: an answer
decided before the body arrived leaves the connection unable to take its next request.
:func:`finish_unread_bodies` installs the Quart hook both apps use against it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio
from quart import Quart, Response, request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def respond(send: Send, status: int, message: str) -> None:
    body = (message + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE", "REPORT"})


class RequestGuard:
    def __init__(self, app: Any, *, max_headers: int = 100,
                 max_header_bytes: int = 32 * 1024, body_timeout: float = 10.0,
                 max_discard_bytes: int = 64 * 1024) -> None:
        self.app: ASGIApp = app
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes
        self.body_timeout = body_timeout
        self.max_discard_bytes = max_discard_bytes
        self.refused_heads = 0
        self.body_timeouts = 0
        self.ambiguous_framing = 0  # 400: Content-Length and Transfer-Encoding together
        self.discarded_bodies = 0  # bodies dropped from methods that take none

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", ())
        if len(headers) > self.max_headers or \
                sum(len(k) + len(v) for k, v in headers) > self.max_header_bytes:
            self.refused_heads += 1
            await respond(send, 431, f"too many request headers (at most {self.max_headers}, "
                                     f"{self.max_header_bytes} bytes)")
            return
        names = {k.lower() for k, _ in headers}
        chunked = b"transfer-encoding" in names
        if chunked and b"content-length" in names:
            self.ambiguous_framing += 1
            await self._discard_body(receive)
            await respond(send, 400, "Content-Length and Transfer-Encoding together are "
                                     "ambiguous; send one of them")
            return
        if scope.get("method") not in BODY_METHODS and (chunked or any(
                k.lower() == b"content-length" and v.strip() != b"0" for k, v in headers)):
            self.discarded_bodies += 1
            failure = await self._discard_body(receive)
            if failure is not None:
                await respond(send, *failure)
                return
            receive = _without_body(receive)
        await self._guarded(scope, receive, send)

    async def _discard_body(self, receive: Receive) -> tuple[int, str] | None:
        """Read and drop the request body; the answer that closes the connection if it does
        not end within the body deadline and ``max_discard_bytes``, else None."""
        seen = 0
        with trio.move_on_after(self.body_timeout):
            while seen <= self.max_discard_bytes:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return None
                seen += len(message.get("body", b""))
            return 413, f"a body on this method is dropped up to {self.max_discard_bytes} bytes"
        self.body_timeouts += 1
        return 408, f"request body not received within {self.body_timeout:g} s"

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        deadline = trio.current_time() + self.body_timeout
        state = {"started": False, "body_done": False, "timed_out": False}
        app_scope = trio.CancelScope()

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        async def guarded_receive() -> Message:
            if state["body_done"]:
                return await receive()
            with trio.move_on_at(deadline):
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    state["body_done"] = True
                return message
            state["timed_out"] = True
            app_scope.cancel()
            await trio.sleep_forever()  # cancelled at once, by the line above
            raise AssertionError("unreachable")

        with app_scope:
            await self.app(scope, guarded_receive, guarded_send)
        if state["timed_out"]:
            self.body_timeouts += 1
            if not state["started"]:
                await respond(send, 408, f"request body not received within "
                                         f"{self.body_timeout:g} s")


def _without_body(receive: Receive) -> Receive:
    """``receive`` for an app whose request body was already read and dropped: one empty
    body message, then whatever comes next (``http.disconnect``)."""
    pending = [{"type": "http.request", "body": b"", "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def finish_unread_bodies(app: Quart) -> None:
    """Read the rest of a request body that the answer was decided without.

    An answer decided from the head alone (a 415, 401 or 404 to a POST or REPORT) leaves the
    body unread. If the body reaches hypercorn after that answer, the keep-alive
    connection's next request is never answered (reproduced on both hypercorn listeners: a
    body sent 50 ms after its head, then any request, timed out every time). Reading the
    rest before the answer goes out lets hypercorn start the connection's next cycle.
    """

    @app.after_request
    async def _finish_body(response: Response) -> Response:
        if request.method in BODY_METHODS:
            with contextlib.suppress(Exception):  # too large or too slow: it closes anyway
                await request.get_data(cache=False)
        return response
