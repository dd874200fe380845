"""Client-side and mobile streams on the fast path: routing, validation, heads (sans-IO).

Theory of operation
-------------------
The stream listener serves, besides ``/all`` and ``/flags``, the streams of PROTOCOL.md §2.3:

==================================  =======  ================================================
path                                method   credential / context
==================================  =======  ================================================
``/eval/{envId}/{b64}``             GET      env ID in the path, context base64url (CORS)
``/eval/{envId}``                   REPORT   env ID in the path, context JSON in the body
``/meval/{b64}``, ``/meval``        GET,     ``Authorization: <mobile key>``
                                    REPORT
``/ping/{envId}``                   GET      env ID (CORS); ``ping`` events only
``/mping``                          GET      mobile key; ``ping`` events only
==================================  =======  ================================================

``OPTIONS`` on any environment-ID path is a CORS preflight: answered with the headers of §2.6
and no lookup. :func:`route_any` maps a head to a :class:`ClientStreamRequest` (or defers to
:func:`~streamer.fastpath.http_head.route_stream` for the server-side streams); once the body of a
REPORT has been read and the environment found, :func:`resolve` validates the context and
secure mode and yields the :class:`ClientTarget` the connection attaches with. The response
head of an environment-ID stream carries the CORS headers, so it is built per connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from bus.envelope import EnvironmentInfo
from flagmodel import Context
from streamer.clientside.client_groups import GroupKey, group_key
from streamer.clientside.client_request import (
    MAX_CONTEXT_BYTES,
    BadRequest,
    ClientQuery,
    check_secure_mode,
    cors_headers,
    is_json_content_type,
    parse_query,
    request_context,
    strip_credential,
)
from streamer.fastpath.http_head import (
    STREAM_RESPONSE_HEAD,
    ErrorAnswer,
    RequestHead,
    StreamKind,
    StreamRoute,
    route_stream,
)
from streamer.fastpath.sse import event_chunk

MAX_BODY_BYTES = MAX_CONTEXT_BYTES
EVAL_METHODS = "GET, REPORT, OPTIONS"
PING_METHODS = "GET, OPTIONS"
PING_FRAME = event_chunk("ping", b" ")  # Relay's ping: empty data would be dropped by SDKs
MOBILE_KINDS = (StreamKind.MEVAL, StreamKind.MPING)
PING_KINDS = (StreamKind.PING, StreamKind.MPING)


@dataclass(frozen=True, slots=True)
class ClientStreamRequest:
    kind: StreamKind  # EVAL, MEVAL, PING or MPING
    credential: str  # the env ID, or the mobile key
    context_b64: str | None  # GET: the path segment
    report: bool  # REPORT: the context is the body
    query: ClientQuery
    origin: str | None


@dataclass(frozen=True, slots=True)
class Preflight:
    origin: str | None
    methods: str


@dataclass(frozen=True, slots=True)
class ClientTarget:
    head: bytes
    group: GroupKey | None  # None for ping streams
    context: Context | None


def _client_route(head: RequestHead, path: str, query: str) -> (
        ClientStreamRequest | Preflight | ErrorAnswer | None):
    parts = path.split("/")[1:]  # "/eval/env/b64" -> ["eval", "env", "b64"]
    name, rest = parts[0], parts[1:]
    origin = head.header("origin")
    method = head.method
    if name == "eval" and len(rest) in (1, 2) and all(rest):
        methods, kind, credential = EVAL_METHODS, StreamKind.EVAL, rest[0]
        b64 = rest[1] if len(rest) == 2 else None
    elif name == "ping" and len(rest) == 1 and rest[0]:
        methods, kind, credential, b64 = PING_METHODS, StreamKind.PING, rest[0], None
    elif name == "meval" and len(rest) <= 1:
        methods, kind, b64 = EVAL_METHODS, StreamKind.MEVAL, (rest[0] or None) if rest else None
        credential = ""
    elif name == "mping" and not rest:
        methods, kind, credential, b64 = PING_METHODS, StreamKind.MPING, "", None
    else:
        return None
    if method == "OPTIONS":
        return Preflight(origin, methods)
    report = method == "REPORT" and kind in (StreamKind.EVAL, StreamKind.MEVAL) and b64 is None
    if not report and not (method == "GET" and (b64 is not None or kind in PING_KINDS)):
        allowed = "REPORT, OPTIONS" if b64 is None and kind not in PING_KINDS else "GET, OPTIONS"
        return ErrorAnswer(405, f"method not allowed; this stream takes {allowed}", allow=allowed)
    if report:
        if not is_json_content_type(head.header("content-type")):
            return ErrorAnswer(415, "REPORT needs Content-Type: application/json")
        length = head.header("content-length")
        if length is not None and length.strip().isdigit() and int(length) > MAX_BODY_BYTES:
            return ErrorAnswer(413, "request body too large")
    if kind in MOBILE_KINDS:
        key = strip_credential(head.header("authorization"))
        if key is None:
            return ErrorAnswer(401, "missing or malformed Authorization header (mobile key)")
        credential = key
    query_args = dict(parse_qsl(query, keep_blank_values=True))
    return ClientStreamRequest(kind, credential, b64, report, parse_query(query_args), origin)


def route_any(head: RequestHead) -> StreamRoute | ClientStreamRequest | Preflight | ErrorAnswer:
    """Route a request head on the stream listener: server-side or client-side stream."""
    if head.http_version == "1.1":
        split = urlsplit(head.target)
        path = unquote(split.path)
        if len(path) > 1:
            path = path.rstrip("/")
        if path.startswith(("/eval/", "/ping/", "/meval", "/mping")):
            routed = _client_route(head, path, split.query)
            if routed is not None:
                return routed
    return route_stream(head)


def _head_lines(lines: list[tuple[str, str]]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in lines).encode("latin-1")


def client_stream_head(kind: StreamKind, origin: str | None) -> bytes:
    """The 200 head of a client-side stream: with CORS headers on environment-ID streams."""
    if kind in MOBILE_KINDS:
        return STREAM_RESPONSE_HEAD
    base = STREAM_RESPONSE_HEAD.replace(b"Access-Control-Allow-Origin: *\r\n", b"")
    methods = PING_METHODS if kind is StreamKind.PING else EVAL_METHODS
    return base[:-2] + _head_lines(cors_headers(origin, methods)) + b"\r\n"


def preflight_response(preflight: Preflight) -> bytes:
    lines = cors_headers(preflight.origin, preflight.methods)
    return (b"HTTP/1.1 200 OK\r\n" + _head_lines(lines)
            + b"Content-Length: 0\r\nConnection: close\r\n\r\n")


def unknown_credential(kind: StreamKind) -> ErrorAnswer:
    if kind in MOBILE_KINDS:
        return ErrorAnswer(401, "unknown mobile key")
    return ErrorAnswer(404, "unknown environment ID")


def resolve(req: ClientStreamRequest, body: bytes | None,
            env: EnvironmentInfo) -> ClientTarget | ErrorAnswer:
    """Validate the context (and secure mode) of a request for environment ``env``."""
    head = client_stream_head(req.kind, req.origin)
    if req.kind in PING_KINDS:
        return ClientTarget(head, None, None)
    try:
        raw, context = request_context(b64=req.context_b64, body=body if req.report else None)
        if req.kind is StreamKind.EVAL:
            check_secure_mode(env.secure_mode, env.sdk_key, context, req.query.secure_hash)
        key = group_key(raw, with_reasons=req.query.with_reasons,
                        mobile=req.kind is StreamKind.MEVAL)
    except BadRequest as exc:
        return ErrorAnswer(400, str(exc))
    except orjson.JSONEncodeError as exc:  # decoded, yet not encodable again: the client's
        return ErrorAnswer(400, f"context cannot be encoded: {exc}")
    return ClientTarget(head, key, context)
