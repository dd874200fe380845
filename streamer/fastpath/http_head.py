"""HTTP/1.1 request heads for the stream listener: parse, route, answer (sans-IO).

Theory of operation
-------------------
The stream listener reads exactly one request per connection. :class:`HeadReader` feeds the
received bytes to an h11 server connection until h11 yields the ``Request`` (the head), and
enforces a size limit (h11's ``max_incomplete_event_size``) and a limit on the number of header
lines, so a client can neither send an endless head nor a malformed one without getting a 4xx.
An error answer never repeats the client's bytes (h11's messages quote them): its text is one
of a few fixed messages, so nothing a client sends is reflected to it or to a browser.
:func:`route_stream` then maps the head to a :class:`StreamRoute` (which stream, which
credential) or an :class:`ErrorAnswer`, and :func:`error_response` renders an error as a
complete ``Connection: close`` response. The success head is the constant
:data:`STREAM_RESPONSE_HEAD`: built once, sent as bytes. Timeouts and sockets belong to the
caller (:mod:`streamer.fastpath.stream_actor`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote, urlsplit

import h11

DEFAULT_MAX_HEAD_BYTES = 16 * 1024
# An SDK sends fewer than 20 header lines; 16 KiB of tiny lines would be about 3,000.
DEFAULT_MAX_HEADER_LINES = 100

STREAM_RESPONSE_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream; charset=utf-8\r\n"
    b"Cache-Control: no-cache, no-store, must-revalidate\r\n"
    b"Connection: keep-alive\r\n"
    b"Access-Control-Allow-Origin: *\r\n"
    b"X-Accel-Buffering: no\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
)


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: str
    http_version: str
    headers: tuple[tuple[str, str], ...]  # names lower-cased, in arrival order

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    status: int
    message: str
    allow: str | None = None  # the Allow header of a 405


class HeadError(Exception):
    """The request head is malformed or too large."""

    def __init__(self, answer: ErrorAnswer) -> None:
        super().__init__(answer.message)
        self.answer = answer


class HeadReader:
    """Accumulates bytes until a complete request head has arrived."""

    def __init__(self, *, max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES,
                 max_header_lines: int = DEFAULT_MAX_HEADER_LINES) -> None:
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head_bytes)
        self._max = max_head_bytes
        self._max_lines = max_header_lines
        self._body = bytearray()

    def feed(self, data: bytes) -> RequestHead | None:
        """Feed received bytes (``b""`` at EOF); the head once complete, else None.

        Raises :class:`HeadError` for a malformed, oversized or truncated head.
        """
        try:
            self._conn.receive_data(data)
            event = self._conn.next_event()
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            message = {431: "request head too large",
                       501: "unsupported transfer coding"}.get(status, "malformed request head")
            raise HeadError(ErrorAnswer(status, message)) from None
        if event is h11.NEED_DATA:
            return None
        if isinstance(event, h11.Request):
            # h11 only measures a head while it is incomplete; one read can complete a big one.
            size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
            if size > self._max:
                raise HeadError(ErrorAnswer(431, "request head too large"))
            if len(event.headers) > self._max_lines:
                raise HeadError(ErrorAnswer(
                    431, f"too many request header lines (at most {self._max_lines})"))
            return RequestHead(
                method=event.method.decode("ascii", "replace"),
                target=event.target.decode("ascii", "replace"),
                http_version=event.http_version.decode("ascii", "replace"),
                headers=tuple(
                    (k.decode("ascii", "replace"), v.decode("latin-1")) for k, v in event.headers
                ),
            )
        raise HeadError(ErrorAnswer(400, "connection closed before a complete request head"))

    def feed_body(self, data: bytes | None, *, max_bytes: int) -> bytes | None:
        """After the head: feed received bytes (``b""`` at EOF, None to look only at what
        arrived with the head); the whole body once complete, else None.

        Raises :class:`HeadError` for a body over ``max_bytes`` (413) or a truncated one.
        """
        try:
            if data is not None:
                self._conn.receive_data(data)
            while True:
                event = self._conn.next_event()
                if event is h11.NEED_DATA:
                    return None
                if isinstance(event, h11.Data):
                    self._body += event.data
                    if len(self._body) > max_bytes:
                        raise HeadError(ErrorAnswer(413, "request body too large"))
                elif isinstance(event, h11.EndOfMessage):
                    return bytes(self._body)
                else:
                    break
        except h11.RemoteProtocolError:
            raise HeadError(ErrorAnswer(400, "malformed request body")) from None
        raise HeadError(ErrorAnswer(400, "connection closed before the request body was complete"))


class StreamKind(enum.Enum):
    ALL = "all"  # /all: flags and segments
    FLAGS = "flags"  # /flags: legacy, flags only, paths without the kind prefix
    EVAL = "eval"  # /eval/{envId}: flags evaluated for one context (browser JS)
    MEVAL = "meval"  # /meval: the same for mobile keys
    PING = "ping"  # /ping/{envId}: "ping" on every change, the SDK re-polls (old JS SDKs)
    MPING = "mping"  # /mping: the same for mobile keys


@dataclass(frozen=True, slots=True)
class StreamRoute:
    kind: StreamKind
    credential: str


_STREAM_PATHS = {"/all": StreamKind.ALL, "/flags": StreamKind.FLAGS}


def sdk_credential(authorization: str | None) -> str | None:
    """The SDK key in an ``Authorization`` value (raw, or with Relay's ``api_key `` prefix).

    None when missing or when the value still contains a space (PROTOCOL.md §1.1).
    """
    if authorization is None:
        return None
    value = authorization.strip()
    if value[:8].lower() == "api_key ":
        value = value[8:].strip()
    if not value or " " in value:
        return None
    return value


def route_stream(head: RequestHead) -> StreamRoute | ErrorAnswer:
    """Map a request head on the stream listener to a stream or an error answer."""
    if head.http_version != "1.1":
        return ErrorAnswer(505, "streams need HTTP/1.1 (chunked transfer encoding)")
    split = urlsplit(head.target)
    path = unquote(split.path)
    if len(path) > 1:
        path = path.rstrip("/")
    kind = _STREAM_PATHS.get(path)
    if kind is None:
        return ErrorAnswer(404, "no stream at this path")
    if head.method != "GET":
        return ErrorAnswer(405, "method not allowed; this stream takes GET only", allow="GET")
    for name, value in parse_qsl(split.query, keep_blank_values=True):
        if name == "filter" and value:
            # Payload filters are not supported; Relay answers 404 for an unknown filter.
            return ErrorAnswer(404, "unknown payload filter")
    credential = sdk_credential(head.header("authorization"))
    if credential is None:
        return ErrorAnswer(401, "missing or malformed Authorization header")
    return StreamRoute(kind, credential)


def error_response(answer: ErrorAnswer, *, retry_after: int | None = None) -> bytes:
    """A complete plain-text error response that closes the connection."""
    body = (answer.message + "\n").encode("utf-8", "replace")
    try:
        reason = HTTPStatus(answer.status).phrase
    except ValueError:
        reason = "Error"
    lines = [
        f"HTTP/1.1 {answer.status} {reason}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        "Access-Control-Allow-Origin: *",
    ]
    if answer.allow is not None:
        lines.append(f"Allow: {answer.allow}")
    if retry_after is not None:
        lines.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
