"""The analytics-events endpoints (PROTOCOL.md §3), mounted on the worker's SDK app.

Status codes are chosen for what the SDK does next (PROTOCOL.md §3.3): 202 once the payload is
durable; 400 (with a message) for garbage, 413 for too large, 408 for a body that never
finishes, 503 when the payload could not be queued; the SDK retries 400/408/5xx once and skips a
413 payload. 401 (server, mobile) and 404 (browser) are answered only for a credential that is
really unknown, because any other 4xx makes an SDK stop sending events for its lifetime; for the
same reason an unsupported ``Content-Encoding`` is a 400, not a 415.

Credentials: the ``Authorization`` header may carry an ``api_key `` prefix; it is stripped
here, so ``CredentialResolver`` implementations receive the bare key.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from ingest.actor import IngestHandle
from ingest.dedup import PayloadDedup
from ingest.errors import IngestUnavailable, PayloadRejected
from ingest.ports import CredentialResolver
from ingest.records import (
    Payload,
    PayloadKind,
    Source,
    decode_body,
    decode_gif_data,
    parse_events,
    payload_id_or_new,
)

GIF_1X1 = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
CORS_ALLOW_HEADERS = (
    "Cache-Control,Content-Type,Content-Length,Accept-Encoding,X-LaunchDarkly-User-Agent,"
    "X-LaunchDarkly-Payload-ID,X-LaunchDarkly-Wrapper,X-LaunchDarkly-Event-Schema,"
    "X-LaunchDarkly-Tags"
)


@dataclass(frozen=True, slots=True)
class EventLimits:
    max_body_bytes: int = 10 * 1024 * 1024  # as sent (possibly gzip)
    max_decoded_bytes: int = 20 * 1024 * 1024  # after gunzip
    body_timeout_s: float = 30.0


def _json_error(status: int, code: str, message: str) -> Response:
    return Response(
        f'{{"code":"{code}","message":{_quote(message)}}}',
        status=status,
        content_type="application/json",
    )


def _quote(text: str) -> str:
    return orjson.dumps(text).decode()


def _bare_key(header: str | None) -> str | None:
    if not header:
        return None
    key = header[8:] if header.lower().startswith("api_key ") else header
    key = key.strip()
    return key if key and " " not in key else None


def _cors(response: Response, methods: str) -> Response:
    response.headers["Access-Control-Allow-Origin"] = request.headers.get("Origin") or "*"
    response.headers["Access-Control-Allow-Credentials"] = "false"
    response.headers["Access-Control-Max-Age"] = "300"
    response.headers["Access-Control-Expose-Headers"] = "Date"
    response.headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
    response.headers["Access-Control-Allow-Methods"] = methods
    return response


async def _read_body(limits: EventLimits) -> bytes:
    declared = request.content_length
    if declared is not None and declared > limits.max_body_bytes:
        raise PayloadRejected(
            f"body exceeds the limit of {limits.max_body_bytes} bytes", status=413
        )
    buf = bytearray()
    with trio.move_on_after(limits.body_timeout_s) as scope:
        try:
            async for chunk in request.body:
                buf += chunk
                if len(buf) > limits.max_body_bytes:
                    raise PayloadRejected(
                        f"body exceeds the limit of {limits.max_body_bytes} bytes", status=413
                    )
        except HTTPException as exc:  # the app's own MAX_CONTENT_LENGTH or body timeout
            code = exc.code or 400
            raise PayloadRejected(exc.description or "bad body", status=code) from None
    if scope.cancelled_caught:
        raise PayloadRejected("timed out reading the request body", status=408)
    return bytes(buf)


def register_event_routes(
    app: QuartTrio,
    resolver: CredentialResolver,
    ingest: IngestHandle,
    *,
    limits: EventLimits | None = None,
    dedup: PayloadDedup | None = None,
) -> None:
    """Add the events endpoints of PROTOCOL.md §3.1 to ``app``."""
    lim = limits or EventLimits()
    seen = dedup or PayloadDedup()

    async def accept(env: str, kind: PayloadKind, source: Source, raw: bytes | None) -> Response:
        try:
            body = await _read_body(lim) if raw is None else raw
            encoding = None if raw is not None else request.headers.get("Content-Encoding")
            header_id = request.headers.get("X-LaunchDarkly-Payload-ID")
            is_retry = kind is PayloadKind.ANALYTICS and header_id is not None
            if is_retry and seen.seen(env, header_id or "", time.monotonic()):
                return Response(b"", status=202)
            events = parse_events(decode_body(body, encoding, lim.max_decoded_bytes), kind)
            payload = Payload(
                env=env,
                kind=kind,
                source=source,
                payload_id=payload_id_or_new(header_id),
                received_ms=int(time.time() * 1000),
                events=events,
            )
            await ingest.submit(payload)
        except PayloadRejected as exc:
            code = {413: "too_large", 408: "timeout"}.get(exc.status, "invalid_payload")
            return _json_error(exc.status, code, exc.message)
        except IngestUnavailable as exc:
            response = _json_error(503, "unavailable", str(exc))
            response.headers["Retry-After"] = "1"
            return response
        if is_retry:
            seen.remember(env, payload.payload_id, time.monotonic())
        return Response(b"", status=202)

    def keyed(
        source: Source, kind: PayloadKind, lookup: Callable[[str], str | None]
    ) -> Callable[[], Awaitable[Response]]:
        async def view() -> Response:
            key = _bare_key(request.headers.get("Authorization"))
            env = None if key is None else await resolver.await_known(lambda: lookup(key))
            if env is None:
                await _drain_quietly(lim)
                return _json_error(401, "unauthorized", "unknown or missing SDK credential")
            return await accept(env, kind, source, None)

        return view

    def by_env_id(kind: PayloadKind) -> Callable[..., Awaitable[Response]]:
        async def view(env_id: str) -> Response:
            if request.method == "OPTIONS":
                return _cors(Response(b"", status=200), "POST,OPTIONS")
            env = await resolver.await_known(lambda: resolver.env_key_for_client_side_id(env_id))
            if env is None:
                await _drain_quietly(lim)
                return _cors(_json_error(404, "not_found", "unknown environment ID"), "POST")
            return _cors(await accept(env, kind, Source.CLIENT, None), "POST,OPTIONS")

        return view

    async def gif(env_id: str) -> Response:
        if request.method == "OPTIONS":
            return _cors(Response(b"", status=200), "GET,OPTIONS")
        env = await resolver.await_known(lambda: resolver.env_key_for_client_side_id(env_id))
        if env is None:
            return _cors(_json_error(404, "not_found", "unknown environment ID"), "GET")
        try:
            raw = decode_gif_data(request.args.get("d"))
        except PayloadRejected as exc:
            return _cors(_json_error(400, "invalid_payload", exc.message), "GET,OPTIONS")
        answer = await accept(env, PayloadKind.ANALYTICS, Source.CLIENT, raw)
        if answer.status_code != 202:
            return _cors(answer, "GET,OPTIONS")
        ok = Response(GIF_1X1, status=200, content_type="image/gif")
        ok.headers["Cache-Control"] = "no-cache, no-store, must-revalidate"
        return _cors(ok, "GET,OPTIONS")

    def add(rule: str, name: str, view: Callable[..., Awaitable[Any]], methods: list[str]) -> None:
        app.add_url_rule(
            rule, f"ingest_{name}", view, methods=methods, provide_automatic_options=False
        )

    sdk, mob = resolver.env_key_for_sdk_key, resolver.env_key_for_mobile_key
    analytics, diagnostic = PayloadKind.ANALYTICS, PayloadKind.DIAGNOSTIC
    add("/bulk", "bulk", keyed(Source.SERVER, analytics, sdk), ["POST"])
    add("/diagnostic", "diagnostic", keyed(Source.SERVER, diagnostic, sdk), ["POST"])
    for i, rule in enumerate(("/mobile", "/mobile/events", "/mobile/events/bulk")):
        add(rule, f"mobile_bulk_{i}", keyed(Source.MOBILE, analytics, mob), ["POST"])
    add("/mobile/events/diagnostic", "mobile_diag", keyed(Source.MOBILE, diagnostic, mob), ["POST"])
    add("/events/bulk/<env_id>", "js_bulk", by_env_id(analytics), ["POST", "OPTIONS"])
    add("/events/diagnostic/<env_id>", "js_diag", by_env_id(diagnostic), ["POST", "OPTIONS"])
    add("/a/<env_id>.gif", "js_gif", gif, ["GET", "OPTIONS"])


async def _drain_quietly(limits: EventLimits) -> None:
    """Read (and discard) a refused request's body so the keep-alive connection stays usable;
    give up early on a body that is too large or too slow."""
    with contextlib.suppress(PayloadRejected):
        await _read_body(limits)
