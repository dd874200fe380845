"""HTTP plumbing of the admin API: the error shape, auth, and reading a JSON body safely.

Every error leaves as ``{"error": {"code": ..., "message": ...}}``. Exceptions are translated
here once (STYLE.md principle 9): werkzeug's HTTP errors, the writer's refusals and our own
:class:`ApiError` all become that shape, and bad input never reaches a 500.
"""

from __future__ import annotations

from typing import Any

import orjson
from quart import Response, g, request

from flagmodel.validation import is_valid_key
from store.accounts import Principal
from store.json_depth import within_depth
from store.writer import CommitFailedError, ConflictError, InvalidError, NotFoundError, WriteError

MAX_JSON_DEPTH = 64  # deeper bodies are refused: orjson cannot re-encode past 254 levels
JSON_TYPES = frozenset({"application/json"})
# The media types a PATCH body may have; store.patch_format picks the format (and reads the
# domain-model parameter that makes application/json a semantic patch).
PATCH_TYPES = frozenset({"application/json", "application/merge-patch+json",
                         "application/json-patch+json"})

_CODES = {
    400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large",
    415: "unsupported_media_type", 429: "too_many_requests", 503: "unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str,
                 details: list[str] | dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def json_response(body: Any, status: int = 200) -> Response:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(raw, status=status, content_type="application/json")


def error_response(status: int, message: str,
                   details: list[str] | dict[str, Any] | None = None) -> Response:
    """The error shape; ``details`` is a list of messages, or an object for an error that
    carries values (a change request's 409: ``baseVersion`` and ``currentVersion``)."""
    err: dict[str, Any] = {"code": _CODES.get(status, "error"), "message": message}
    if details:
        err["details"] = details
    resp = json_response({"error": err}, status)
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="flagstream-admin"'
    return resp


def write_error_to_api(exc: WriteError) -> ApiError:
    status = {NotFoundError: 404, InvalidError: 400, ConflictError: 409,
              CommitFailedError: 503}.get(type(exc), 400)
    details = list(exc.errors) if isinstance(exc, InvalidError) else None
    return ApiError(status, "; ".join(exc.errors), details)


def check_key(value: str, what: str) -> str:
    if not is_valid_key(value):
        raise ApiError(400, f"invalid {what} {value[:100]!r}: use 1-256 of A-Z a-z 0-9 . _ -")
    return value


async def read_json(max_bytes: int, allowed: frozenset[str] = JSON_TYPES) -> Any:
    """The request body as JSON; 415 for another content type, 413 if too big, 400 if bad."""
    if request.mimetype not in allowed:
        got = request.mimetype or "none"
        raise ApiError(415, f"content type must be {' or '.join(sorted(allowed))}, got {got}")
    raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    if len(raw) > max_bytes:  # also enforced while reading, by MAX_CONTENT_LENGTH
        raise ApiError(413, f"body is larger than {max_bytes} bytes")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from None
    if not within_depth(value, MAX_JSON_DEPTH):
        raise ApiError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def current_principal() -> Principal:
    """Who this request authenticated as (the admin app's guard stored it)."""
    principal = g.get("principal")
    if not isinstance(principal, Principal):
        raise ApiError(401, "missing or invalid bearer token")
    return principal


def actor() -> str:
    """Who made the change, for the history: the authenticated identity (a username,
    ``token:<name>``, ``token:bootstrap``); "-" before authentication. The
    ``X-Flagstream-Actor`` header is ignored: a header can add a comment, never change who."""
    principal = g.get("principal")
    return principal.name if isinstance(principal, Principal) else "-"
