"""Pure helpers for the client-side and mobile endpoints (PROTOCOL.md §2): the context in the
URL or the REPORT body, credentials, and CORS headers.

Both the fast-path stream listener and the hypercorn SDK app use these, so a context is
decoded, and an error worded, the same way on every path.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from flagmodel import Context, ContextError, parse_context, secure_mode_hash
from store.containment import InputError
from store.json_depth import within_depth

MAX_CONTEXT_BYTES = 32 * 1024
# A context is re-encoded (its group key, events) and walked by evaluation: orjson encodes at
# most 254 levels, and real contexts nest a few. Deeper ones are refused with a 400.
MAX_CONTEXT_DEPTH = 32

CORS_ALLOW_HEADERS = (
    "Cache-Control,Content-Type,Content-Length,Accept-Encoding,X-LaunchDarkly-User-Agent,"
    "X-LaunchDarkly-Payload-ID,X-LaunchDarkly-Wrapper,X-LaunchDarkly-Event-Schema,"
    "X-LaunchDarkly-Tags"
)


class BadRequest(InputError):
    """Input the client must fix; the message goes into a 400 answer."""


@dataclass(frozen=True, slots=True)
class ClientQuery:
    with_reasons: bool
    secure_hash: str | None


def decode_context_b64(segment: str) -> Any:
    """Decode the base64url (padded or not; standard alphabet tolerated) JSON in a GET path."""
    if len(segment) > MAX_CONTEXT_BYTES * 4 // 3 + 4:
        raise BadRequest("context is too large")
    text = segment.strip().replace("+", "-").replace("/", "_").rstrip("=")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("context is not valid base64url") from None
    return decode_context_json(raw)


def decode_context_json(raw: bytes) -> Any:
    """Parse a REPORT body (or decoded GET segment) as a JSON object."""
    if len(raw) > MAX_CONTEXT_BYTES:
        raise BadRequest("context is too large")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("context is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadRequest("context must be a JSON object")
    if not within_depth(value, MAX_CONTEXT_DEPTH):
        raise BadRequest(f"context is nested deeper than {MAX_CONTEXT_DEPTH} levels")
    return value


def parse_query(args: Mapping[str, str]) -> ClientQuery:
    return ClientQuery(
        with_reasons=args.get("withReasons", "").lower() == "true",
        secure_hash=args.get("h") or None,
    )


def strip_credential(header: str | None) -> str | None:
    """An SDK or mobile key from ``Authorization``, raw or with the ``api_key `` prefix."""
    if not header:
        return None
    value = header.strip()
    if value.lower().startswith("api_key "):
        value = value[8:].strip()
    if not value or " " in value:
        return None
    return value


def cors_headers(origin: str | None, methods: str) -> list[tuple[str, str]]:
    """CORS headers of PROTOCOL.md §2.6 for the browser (environment-ID) endpoints."""
    return [
        ("Access-Control-Allow-Origin", origin or "*"),
        ("Access-Control-Allow-Credentials", "false"),
        ("Access-Control-Max-Age", "300"),
        ("Access-Control-Expose-Headers", "Date"),
        ("Access-Control-Allow-Headers", CORS_ALLOW_HEADERS),
        ("Access-Control-Allow-Methods", methods),
    ]


def request_context(*, b64: str | None = None, body: bytes | None = None) -> tuple[
        dict[str, Any], Context]:
    """The context of a GET (base64url path segment) or REPORT (JSON body), as its JSON
    object and parsed; :class:`BadRequest` with the reason otherwise (no key, bad kind...)."""
    raw = decode_context_b64(b64) if b64 is not None else decode_context_json(body or b"")
    try:
        return raw, parse_context(raw)
    except ContextError as exc:
        raise BadRequest(f"invalid context: {exc}") from None


def check_secure_mode(secure_mode: bool, sdk_key: str, context: Context,
                      secure_hash: str | None) -> None:
    """Secure mode (PROTOCOL.md §2.1): ``h`` must be the context's HMAC under the SDK key."""
    if not secure_mode:
        return
    if not secure_hash:
        raise BadRequest("this environment requires secure mode: the h parameter is missing")
    # Bytes on both sides: compare_digest refuses a str that is not ASCII (``?h=%C3%A9``).
    given = secure_hash.lower().encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(given, secure_mode_hash(sdk_key, context).encode()):
        raise BadRequest("secure mode hash (h) does not match the context")


def is_json_content_type(value: str | None) -> bool:
    """Whether a REPORT's ``Content-Type`` is JSON (parameters such as charset allowed)."""
    return value is not None and value.split(";", 1)[0].strip().lower() == "application/json"
